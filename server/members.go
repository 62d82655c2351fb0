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
