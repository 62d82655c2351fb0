package ecdh

import (
	"bytes"
	"strconv"
	"sync"
	"testing"
)

func TestKeyStore(t *testing.T) {
	var s KeyStore // the zero value is ready to use
	if _, ok := s.Get("a"); ok || s.Len() != 0 {
		t.Fatal("zero KeyStore is not empty")
	}
	s.Delete("missing") // must not panic on the nil map

	k1 := mustKey(t, bytes.Repeat([]byte{1}, KeySize))
	k2 := mustKey(t, bytes.Repeat([]byte{2}, KeySize))
	s.Set("a", k1)
	s.Set("b", k2)
	if got, ok := s.Get("a"); !ok || got != k1 {
		t.Fatalf("Get(a) = %p, %v; want %p, true", got, ok, k1)
	}
	if s.Len() != 2 {
		t.Fatalf("Len = %d, want 2", s.Len())
	}

	s.Set("a", k2)
	if got, _ := s.Get("a"); got != k2 {
		t.Fatal("Set did not replace the key")
	}

	s.Set("b", nil)
	if _, ok := s.Get("b"); ok || s.Len() != 1 {
		t.Fatalf("Set(nil) kept the entry: Len %d", s.Len())
	}

	s.Delete("a")
	s.Delete("a")
	if _, ok := s.Get("a"); ok || s.Len() != 0 {
		t.Fatalf("Delete kept the entry: Len %d", s.Len())
	}
}

func TestKeyStoreConcurrent(t *testing.T) {
	var s KeyStore
	key := mustKey(t, bytes.Repeat([]byte{3}, KeySize))
	const workers, perWorker = 8, 200

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				id := strconv.Itoa(w) + "/" + strconv.Itoa(i)
				s.Set(id, key)
				got, ok := s.Get(id)
				if !ok || got != key {
					t.Errorf("Get(%s) after Set: %v, %v", id, got, ok)
					return
				}
				// Use the key concurrently too: Key is shared by the
				// transformer calls of one client.
				if _, err := got.Encrypt([]byte(id), nil); err != nil {
					t.Error(err)
					return
				}
				_ = s.Len()
				if i%2 == 0 {
					s.Delete(id)
				}
			}
		})
	}
	wg.Wait()
	if want := workers * perWorker / 2; s.Len() != want {
		t.Fatalf("Len = %d, want %d", s.Len(), want)
	}
}
