package main

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
)

// maxTokenLength bounds the work spent on a token before its signature is
// checked; real tokens are about 200 bytes.
const maxTokenLength = 1024

// Token errors. They stay inside the app: clients only ever learn that a
// token was refused, not why.
var (
	errTokenMalformed = errors.New("chat: malformed token")
	errTokenSignature = errors.New("chat: bad token signature")
	errTokenExpired   = errors.New("chat: token expired")
)

// claims is what a demo token says about its holder.
type claims struct {
	// Sub is the user id: a fresh UUID per login, so two people who type
	// the same name are still two users.
	Sub string `json:"sub"`
	// Name is the display name shown next to the user's messages.
	Name string `json:"name"`
	// Exp is the expiry, in Unix seconds.
	Exp int64 `json:"exp"`
}

// tokens issues and verifies the demo tokens:
//
//	base64url(JSON claims) "." base64url(HMAC-SHA256(secret, first part))
//
// This is a demo stand-in for a real identity provider: it has no key
// rotation, audience or revocation. Do not use it to protect anything.
type tokens struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
}

func newTokens(secret []byte, ttl time.Duration) *tokens {
	return &tokens{secret: secret, ttl: ttl, now: time.Now}
}

// randomSecret returns 32 bytes from crypto/rand, for processes started
// without TOKEN_SECRET.
func randomSecret() ([]byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, nil
}

// issue signs a token for a new user called name.
func (t *tokens) issue(name string) (token string, c claims, err error) {
	c = claims{Sub: uuid.NewString(), Name: name, Exp: t.now().Add(t.ttl).Unix()}
	body, err := json.Marshal(c)
	if err != nil {
		return "", claims{}, err
	}
	payload := base64.RawURLEncoding.EncodeToString(body)
	return payload + "." + base64.RawURLEncoding.EncodeToString(t.sign(payload)), c, nil
}

// verify checks the signature first and only then looks at the claims, so
// nothing an attacker made up is parsed.
func (t *tokens) verify(token string) (claims, error) {
	if len(token) > maxTokenLength {
		return claims{}, errTokenMalformed
	}
	payload, sig, ok := strings.Cut(token, ".")
	if !ok || payload == "" || strings.Contains(sig, ".") {
		return claims{}, errTokenMalformed
	}
	gotSig, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return claims{}, errTokenMalformed
	}
	if !hmac.Equal(gotSig, t.sign(payload)) {
		return claims{}, errTokenSignature
	}
	body, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return claims{}, errTokenMalformed
	}
	var c claims
	if err := json.Unmarshal(body, &c); err != nil || c.Sub == "" || validName(c.Name) != nil {
		return claims{}, errTokenMalformed
	}
	if t.now().Unix() >= c.Exp {
		return claims{}, errTokenExpired
	}
	return c, nil
}

func (t *tokens) sign(payload string) []byte {
	mac := hmac.New(sha256.New, t.secret)
	mac.Write([]byte(payload))
	return mac.Sum(nil)
}
