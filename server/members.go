package server

// members is the set of local clients of one room or of one user, stored by
// value in the Helper's indexes (guarded by h.mu). Most sets have a single
// member — every client's own-id room, most users — so that one is held
// inline and a map is made only for a second: an idle connection then costs
// no map of its own.
type members struct {
	one  *client            // the only member, while many is nil
	many map[string]*client // from the second member on
}

// add puts c in the set.
func (m *members) add(c *client) {
	switch {
	case m.many != nil:
		m.many[c.id] = c
	case m.one == nil || m.one == c:
		m.one = c
	default:
		m.many = map[string]*client{m.one.id: m.one, c.id: c}
		m.one = nil
	}
}

// remove takes c out of the set.
func (m *members) remove(c *client) {
	switch {
	case m.many != nil:
		delete(m.many, c.id)
	case m.one == c:
		m.one = nil
	}
}

// len is the number of members.
func (m members) len() int {
	if m.many != nil {
		return len(m.many)
	}
	if m.one != nil {
		return 1
	}
	return 0
}

// collect returns the members in a new slice.
func collect(m members) []*client {
	if m.many == nil {
		if m.one == nil {
			return nil
		}
		return []*client{m.one}
	}
	out := make([]*client, 0, len(m.many))
	for _, c := range m.many {
		out = append(out, c)
	}
	return out
}

// roomSet is the rooms one client is in (guarded by h.mu). Most clients are
// in a handful — their own-id room and the default rooms — which a short
// slice holds in a quarter of a map's memory; past smallRoomSet names it
// becomes a map.
type roomSet struct {
	few  []string
	many map[string]struct{} // instead of few, once it has grown
}

// smallRoomSet is the most names a roomSet keeps in its slice.
const smallRoomSet = 8

func (s *roomSet) has(room string) bool {
	if s.many != nil {
		_, ok := s.many[room]
		return ok
	}
	for _, r := range s.few {
		if r == room {
			return true
		}
	}
	return false
}

// add puts room in the set.
func (s *roomSet) add(room string) {
	switch {
	case s.has(room):
	case s.many != nil:
		s.many[room] = struct{}{}
	case len(s.few) < smallRoomSet:
		s.few = append(s.few, room)
	default:
		s.many = make(map[string]struct{}, 2*smallRoomSet)
		for _, r := range s.few {
			s.many[r] = struct{}{}
		}
		s.many[room] = struct{}{}
		s.few = nil
	}
}

func (s *roomSet) remove(room string) {
	if s.many != nil {
		delete(s.many, room)
		return
	}
	for i, r := range s.few {
		if r == room {
			s.few = append(s.few[:i], s.few[i+1:]...)
			s.few[:len(s.few)+1][len(s.few)] = "" // let the name go
			return
		}
	}
}

func (s *roomSet) len() int {
	if s.many != nil {
		return len(s.many)
	}
	return len(s.few)
}

// list returns the names in a new slice.
func (s *roomSet) list() []string {
	if s.many == nil {
		return append([]string(nil), s.few...)
	}
	out := make([]string, 0, len(s.many))
	for r := range s.many {
		out = append(out, r)
	}
	return out
}
