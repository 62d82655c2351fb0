package ecdh

import "sync"

// KeyStore maps client ids to their message keys. It is safe for concurrent
// use; the zero value is an empty store ready to use. A KeyStore must not be
// copied after first use.
type KeyStore struct {
	mu   sync.RWMutex
	keys map[string]*Key
}

// Set stores k for clientID, replacing any earlier key. A nil k removes the
// entry, so Get never reports a nil key as present.
func (s *KeyStore) Set(clientID string, k *Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k == nil {
		delete(s.keys, clientID)
		return
	}
	if s.keys == nil {
		s.keys = make(map[string]*Key)
	}
	s.keys[clientID] = k
}

// Get returns the key for clientID and whether there is one.
func (s *KeyStore) Get(clientID string) (*Key, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok := s.keys[clientID]
	return k, ok
}

// Delete removes the key for clientID; deleting a missing id does nothing.
// Call it when the client disconnects.
func (s *KeyStore) Delete(clientID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.keys, clientID)
}

// Len returns the number of stored keys.
func (s *KeyStore) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.keys)
}
