package wsframe

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// protocolCase is one client byte stream and what the server's reader must
// make of it. Each name starts with the Autobahn TestSuite case it mirrors
// (or the RFC 6455 section for what Autobahn does not send).
type protocolCase struct {
	name    string
	give    []byte
	limit   int64 // Config.MaxMessageSize; 0 is the default
	chop    int   // also feed in chops of this size, as the case does
	want    []got
	wantErr *ProtocolError // nil: no error
	partial bool           // the stream ends inside a frame or message
}

const (
	textHello = "Hello, world!"
	utf8Hello = "Hello-\u00b5@\u00df\u00f6\u00e4\u00fc\u00e0\u00e1-UTF-8!!"
	kosme     = "\u03ba\u1f79\u03c3\u03bc\u03b5" // κόσμε
)

func framingCases() []protocolCase {
	var cs []protocolCase
	for i, n := range []int{0, 125, 126, 127, 128, 65535, 65536, 65536} {
		chop := 0
		if i == 7 {
			chop = 997
		}
		p := strings.Repeat("*", n)
		cs = append(cs,
			protocolCase{name: fmt.Sprintf("1.1.%d text, %d bytes", i+1, n), give: msg(opText, p), chop: chop, want: []got{text(p)}},
		)
		b := strings.Repeat("\xfe", n)
		cs = append(cs,
			protocolCase{name: fmt.Sprintf("1.2.%d binary, %d bytes", i+1, n), give: msg(opBinary, b), chop: chop, want: []got{binMsg(b)}},
		)
	}
	return append(cs,
		protocolCase{name: "RFC 5.2 non-minimal 16-bit length accepted (as gorilla does)",
			give: wire{head: finBit | opText, payload: []byte("short"), lenBytes: 2}.bytes(), want: []got{text("short")}},
		protocolCase{name: "RFC 5.2 non-minimal 64-bit length accepted (as gorilla does)",
			give: wire{head: finBit | opBinary, payload: []byte("short"), lenBytes: 8}.bytes(), want: []got{binMsg("short")}},
		protocolCase{name: "RFC 5.2 64-bit length with the most significant bit set",
			give: []byte{finBit | opBinary, maskBit | 127, 0x80, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4}, wantErr: causeLength.err()},
		protocolCase{name: "RFC 5.1 unmasked client frame",
			give: wire{head: finBit | opText, payload: []byte(textHello), unmasked: true}.bytes(), wantErr: causeUnmasked.err()},
		protocolCase{name: "RFC 5.1 unmasked frame after a good one",
			give: cat(msg(opText, "a"), wire{head: finBit | opPing, unmasked: true}.bytes()), want: []got{text("a")}, wantErr: causeUnmasked.err()},
		protocolCase{name: "RFC 5.2 stream ends inside a header", give: msg(opText, textHello)[:3], partial: true},
		protocolCase{name: "RFC 5.2 stream ends inside a payload", give: msg(opText, textHello)[:9], partial: true},
		protocolCase{name: "RFC 5.2 two messages back to back", give: cat(msg(opText, "a"), msg(opBinary, "b")), want: []got{text("a"), binMsg("b")}},
	)
}

func pingCases() []protocolCase {
	bin := "\x00\xff\xfe\xfd\xfc\xfb\x00\xff"
	p125 := strings.Repeat("\xfe", 125)
	var tenPings []byte
	var tenWant []got
	for i := range 10 {
		s := fmt.Sprintf("payload-%d", i)
		tenPings = append(tenPings, msg(opPing, s)...)
		tenWant = append(tenWant, ping(s))
	}
	return []protocolCase{
		{name: "2.1 ping, empty payload", give: msg(opPing, ""), want: []got{ping("")}},
		{name: "2.2 ping, small text payload", give: msg(opPing, textHello), want: []got{ping(textHello)}},
		{name: "2.3 ping, small binary payload", give: msg(opPing, bin), want: []got{ping(bin)}},
		{name: "2.4 ping, 125-byte payload", give: msg(opPing, p125), want: []got{ping(p125)}},
		{name: "2.5 ping, 126-byte payload", give: msg(opPing, p125+"\xfe"), wantErr: causeControlTooLong.err()},
		{name: "2.6 ping, 125-byte payload in 1-byte chops", give: msg(opPing, p125), chop: 1, want: []got{ping(p125)}},
		{name: "2.7 unsolicited pong, empty payload", give: msg(opPong, ""), want: []got{pong("")}},
		{name: "2.8 unsolicited pong with payload", give: msg(opPong, "unsolicited pong payload"), want: []got{pong("unsolicited pong payload")}},
		{name: "2.9 unsolicited pong, then ping", give: cat(msg(opPong, "unsolicited pong payload"), msg(opPing, "ping payload")),
			want: []got{pong("unsolicited pong payload"), ping("ping payload")}},
		{name: "2.10 10 pings", give: tenPings, want: tenWant},
		{name: "2.11 10 pings in 1-byte chops", give: tenPings, chop: 1, want: tenWant},
	}
}

func reservedBitCases() []protocolCase {
	rsv := func(bits, op byte, p string) []byte {
		return wire{head: finBit | bits<<4 | op, payload: []byte(p)}.bytes()
	}
	return []protocolCase{
		{name: "3.1 text with RSV = 1", give: rsv(1, opText, textHello), wantErr: causeReservedBits.err()},
		{name: "3.2 text, text with RSV = 2, ping", give: cat(msg(opText, textHello), rsv(2, opText, textHello), msg(opPing, "")),
			want: []got{text(textHello)}, wantErr: causeReservedBits.err()},
		{name: "3.3 text, text with RSV = 3, ping (frame-wise)", give: cat(msg(opText, textHello), rsv(3, opText, textHello), msg(opPing, "")),
			want: []got{text(textHello)}, wantErr: causeReservedBits.err()},
		{name: "3.4 text, text with RSV = 4, ping (octet-wise)", chop: 1, give: cat(msg(opText, textHello), rsv(4, opText, textHello), msg(opPing, "")),
			want: []got{text(textHello)}, wantErr: causeReservedBits.err()},
		{name: "3.5 binary with RSV = 5", give: rsv(5, opBinary, "\x00\xff\xfe"), wantErr: causeReservedBits.err()},
		{name: "3.6 ping with RSV = 6", give: rsv(6, opPing, textHello), wantErr: causeReservedBits.err()},
		{name: "3.7 close with RSV = 7", give: rsv(7, opClose, "\x03\xe8"), wantErr: causeReservedBits.err()},
	}
}

func opcodeCases() []protocolCase {
	var cs []protocolCase
	for i, op := range []byte{3, 4, 5, 6, 7} {
		cs = append(cs, opcodeCase(fmt.Sprintf("4.1.%d", i+1), "non-control", op, i))
	}
	for i, op := range []byte{11, 12, 13, 14, 15} {
		cs = append(cs, opcodeCase(fmt.Sprintf("4.2.%d", i+1), "control", op, i))
	}
	return cs
}

// opcodeCase mirrors the pattern of 4.1.x and 4.2.x: the reserved opcode
// alone, with a payload, then between a text message and a ping (the
// last one octet-wise).
func opcodeCase(id, class string, op byte, i int) protocolCase {
	bad := msg(op, "")
	if i%2 == 1 {
		bad = msg(op, "reserved opcode payload")
	}
	c := protocolCase{name: fmt.Sprintf("%s reserved %s opcode %d", id, class, op), wantErr: causeOpcode.err()}
	if i < 2 {
		c.give = bad
		return c
	}
	c.give = cat(msg(opText, textHello), bad, msg(opPing, ""))
	c.want = []got{text(textHello)}
	if i == 4 {
		c.chop = 1
	}
	return c
}

func fragmentationCases() []protocolCase {
	two := cat(frag(opText, "fragment1"), msg(opContinuation, "fragment2"))
	withPing := cat(frag(opText, "fragment1"), msg(opPing, "ping payload"), msg(opContinuation, "fragment2"))
	contFirst := cat(msg(opContinuation, "non-continuation payload"), msg(opText, textHello))
	contOpen := cat(frag(opContinuation, "non-continuation payload"), msg(opText, textHello))
	five := cat(frag(opText, "fragment1"), frag(opContinuation, "fragment2"), msg(opPing, "pongme 1!"),
		frag(opContinuation, "fragment3"), frag(opContinuation, "fragment4"), msg(opPing, "pongme 2!"),
		msg(opContinuation, "fragment5"))
	fiveWant := []got{ping("pongme 1!"), ping("pongme 2!"), text("fragment1fragment2fragment3fragment4fragment5")}
	twice := func(fin byte) []byte {
		one := cat(wire{head: fin | opContinuation, payload: []byte("fragment1")}.bytes(), frag(opText, "fragment2"), msg(opContinuation, "fragment3"))
		return cat(one, one)
	}
	return []protocolCase{
		{name: "5.1 ping in 2 fragments", give: cat(frag(opPing, "fragment1"), msg(opContinuation, "fragment2")), wantErr: causeControlFragmented.err()},
		{name: "5.2 pong in 2 fragments", give: cat(frag(opPong, "fragment1"), msg(opContinuation, "fragment2")), wantErr: causeControlFragmented.err()},
		{name: "5.3 text in 2 fragments", give: two, want: []got{text("fragment1fragment2")}},
		{name: "5.4 text in 2 fragments, octet-wise", give: two, chop: 1, want: []got{text("fragment1fragment2")}},
		{name: "5.5 text in 2 fragments, frame-wise", give: two, chop: len(two) / 2, want: []got{text("fragment1fragment2")}},
		{name: "5.6 text in 2 fragments, ping in between", give: withPing, want: []got{ping("ping payload"), text("fragment1fragment2")}},
		{name: "5.7 text in 2 fragments, ping in between, octet-wise", give: withPing, chop: 1, want: []got{ping("ping payload"), text("fragment1fragment2")}},
		{name: "5.8 text in 2 fragments, ping in between, frame-wise", give: withPing, chop: 7, want: []got{ping("ping payload"), text("fragment1fragment2")}},
		{name: "5.9 continuation FIN=1 with nothing to continue, then text", give: contFirst, wantErr: causeContinuation.err()},
		{name: "5.10 same, frame-wise", give: contFirst, chop: 11, wantErr: causeContinuation.err()},
		{name: "5.11 same, octet-wise", give: contFirst, chop: 1, wantErr: causeContinuation.err()},
		{name: "5.12 continuation FIN=0 with nothing to continue, then text", give: contOpen, wantErr: causeContinuation.err()},
		{name: "5.13 same, frame-wise", give: contOpen, chop: 11, wantErr: causeContinuation.err()},
		{name: "5.14 same, octet-wise", give: contOpen, chop: 1, wantErr: causeContinuation.err()},
		{name: "5.15 text in 2 fragments, then continuation FIN=0 and text FIN=1",
			give: cat(two, frag(opContinuation, "fragment3"), msg(opText, "fragment4")),
			want: []got{text("fragment1fragment2")}, wantErr: causeContinuation.err()},
		{name: "5.16 (continuation FIN=0, text FIN=0, continuation FIN=1) twice", give: twice(0), wantErr: causeContinuation.err()},
		{name: "5.17 (continuation FIN=1, text FIN=0, continuation FIN=1) twice", give: twice(finBit), wantErr: causeContinuation.err()},
		{name: "5.18 text FIN=0, then text FIN=1 instead of a continuation",
			give: cat(frag(opText, "fragment1"), msg(opText, "fragment2")), wantErr: causeExpectedContinuation.err()},
		{name: "5.19 text in 5 fragments with 2 pings in between", give: five, want: fiveWant},
		{name: "5.20 same, octet-wise", give: five, chop: 1, want: fiveWant},
		{name: "RFC 5.4 binary fragmented, a control frame of each kind in between",
			give: cat(frag(opBinary, "a"), msg(opPong, "p"), frag(opContinuation, ""), msg(opPing, "q"), msg(opContinuation, "b")),
			want: []got{pong("p"), ping("q"), binMsg("ab")}},
		{name: "RFC 5.4 stream ends between fragments", give: frag(opText, "fragment1"), partial: true},
	}
}

// utf8Payload is one Autobahn 6.x text payload and whether it is valid.
type utf8Payload struct {
	id    string
	s     string
	valid bool
}

func utf8Payloads() []utf8Payload {
	ps := []utf8Payload{
		{"6.5.1", kosme, true},
		{"6.5.2", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", true},
	}
	for k := 1; k <= len(kosme); k++ {
		ps = append(ps, utf8Payload{fmt.Sprintf("6.6.%d", k), kosme[:k], utf8.ValidString(kosme[:k])})
	}
	add := func(section string, valid bool, ss ...string) {
		for i, s := range ss {
			ps = append(ps, utf8Payload{fmt.Sprintf("%s.%d", section, i+1), s, valid})
		}
	}
	add("6.7", true, "\x00", "\xc2\x80", "\xe0\xa0\x80", "\xf0\x90\x80\x80")
	add("6.8", false, "\xf8\x88\x80\x80\x80", "\xfc\x84\x80\x80\x80\x80")
	add("6.9", true, "\x7f", "\xdf\xbf", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf")
	add("6.10", false, "\xf7\xbf\xbf\xbf", "\xfb\xbf\xbf\xbf\xbf", "\xfd\xbf\xbf\xbf\xbf\xbf")
	add("6.11", true, "\xed\x9f\xbf", "\xee\x80\x80", "\xef\xbf\xbd", "\xf4\x8f\xbf\xbf")
	add("6.11", false, "\xf4\x90\x80\x80")
	var allCont []byte
	for b := 0x80; b <= 0xbf; b++ {
		allCont = append(allCont, byte(b))
	}
	add("6.12", false, "\x80", "\xbf", "\x80\xbf", "\x80\xbf\x80", "\x80\xbf\x80\xbf", "\x80\xbf\x80\xbf\x80",
		"\x80\xbf\x80\xbf\x80\xbf", string(allCont))
	var lonely []byte
	for b := 0xc0; b <= 0xfd; b++ {
		lonely = append(lonely, byte(b), ' ')
	}
	add("6.13", false, string(lonely[:64]), string(lonely[64:96]), string(lonely[96:112]), string(lonely[112:120]), string(lonely[120:]))
	incomplete := []string{"\xc0", "\xe0\x80", "\xf0\x80\x80", "\xf8\x80\x80\x80", "\xfc\x80\x80\x80\x80",
		"\xdf", "\xef\xbf", "\xf7\xbf\xbf", "\xfb\xbf\xbf\xbf", "\xfd\xbf\xbf\xbf\xbf"}
	add("6.14", false, incomplete...)
	add("6.15", false, strings.Join(incomplete, ""))
	add("6.16", false, "\xfe", "\xff", "\xfe\xfe\xff\xff")
	add("6.17", false, "\xc0\xaf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf", "\xf8\x80\x80\x80\xaf", "\xfc\x80\x80\x80\x80\xaf")
	add("6.18", false, "\xc1\xbf", "\xe0\x9f\xbf", "\xf0\x8f\xbf\xbf", "\xf8\x87\xbf\xbf\xbf", "\xfc\x83\xbf\xbf\xbf\xbf")
	add("6.19", false, "\xc0\x80", "\xe0\x80\x80", "\xf0\x80\x80\x80", "\xf8\x80\x80\x80\x80", "\xfc\x80\x80\x80\x80\x80")
	add("6.20", false, "\xed\xa0\x80", "\xed\xad\xbf", "\xed\xae\x80", "\xed\xaf\xbf", "\xed\xb0\x80", "\xed\xbe\x80", "\xed\xbf\xbf")
	add("6.21", false, "\xed\xa0\x80\xed\xb0\x80", "\xed\xa0\x80\xed\xbf\xbf", "\xed\xad\xbf\xed\xb0\x80", "\xed\xad\xbf\xed\xbf\xbf",
		"\xed\xae\x80\xed\xb0\x80", "\xed\xae\x80\xed\xbf\xbf", "\xed\xaf\xbf\xed\xb0\x80", "\xed\xaf\xbf\xed\xbf\xbf")
	add("6.22", true, "\xef\xbf\xbe", "\xef\xbf\xbf", "\xf0\x9f\xbf\xbe", "\xf0\x9f\xbf\xbf", "\xf0\xaf\xbf\xbe", "\xf0\xaf\xbf\xbf",
		"\xf3\xbf\xbf\xbe", "\xf4\x8f\xbf\xbf", "\xef\xb7\x90", "\xef\xb7\xaf")
	add("6.23", true, "\xef\xbf\xbd", "\xef\xbb\xbf", "\x00", "\xc2\x85", "\xe2\x80\xa8", "\xe2\x80\xa9", "\xf0\x9f\x98\x80")
	return ps
}

func utf8Cases() []protocolCase {
	octetFrags := func(s string) []byte {
		var out []byte
		for i := range len(s) {
			head := byte(opContinuation)
			if i == 0 {
				head = opText
			}
			if i == len(s)-1 {
				head |= finBit
			}
			out = append(out, wire{head: head, payload: []byte{s[i]}}.bytes()...)
		}
		return out
	}
	runeFrags := func(s string) []byte {
		var out []byte
		first := true
		for i, r := range s {
			head := byte(opContinuation)
			if first {
				head, first = opText, false
			}
			if i+utf8.RuneLen(r) == len(s) {
				head |= finBit
			}
			out = append(out, wire{head: head, payload: []byte(string(r))}.bytes()...)
		}
		return out
	}
	invalidKosme := kosme + "\xed\xa0\x80edited"
	cs := []protocolCase{
		{name: "6.1.1 empty text", give: msg(opText, ""), want: []got{text("")}},
		{name: "6.1.2 empty text in 3 empty fragments", give: cat(frag(opText, ""), frag(opContinuation, ""), msg(opContinuation, "")), want: []got{text("")}},
		{name: "6.1.3 text in 3 fragments, first and last empty",
			give: cat(frag(opText, ""), frag(opContinuation, "middle frame payload"), msg(opContinuation, "")), want: []got{text("middle frame payload")}},
		{name: "6.2.1 valid UTF-8 in one frame", give: msg(opText, utf8Hello), want: []got{text(utf8Hello)}},
		{name: "6.2.2 valid UTF-8 fragmented on code points", give: runeFrags(utf8Hello), want: []got{text(utf8Hello)}},
		{name: "6.2.3 valid UTF-8 fragmented octet-wise", give: octetFrags(utf8Hello), want: []got{text(utf8Hello)}},
		{name: "6.2.4 valid UTF-8 (κόσμε) fragmented octet-wise", give: octetFrags(kosme), want: []got{text(kosme)}},
		{name: "6.3.1 invalid UTF-8 (surrogate) in one frame", give: msg(opText, invalidKosme), wantErr: causeTextUTF8.err()},
		{name: "6.3.2 invalid UTF-8 fragmented octet-wise", give: octetFrags(invalidKosme), wantErr: causeTextUTF8.err()},
		{name: "6.4.1 invalid in the 2nd of 3 fragments",
			give: cat(frag(opText, kosme), frag(opContinuation, "\xf4\x90\x80\x80"), msg(opContinuation, "edited")), wantErr: causeTextUTF8.err()},
		{name: "6.4.2 invalid across fragments (\\xf4 then \\x90)",
			give: cat(frag(opText, kosme+"\xf4"), frag(opContinuation, "\x90"), msg(opContinuation, "\x80\x80edited")), wantErr: causeTextUTF8.err()},
		{name: "6.4.3 invalid in one frame sent in 3 chops", give: msg(opText, kosme+"\xf4\x90\x80\x80edited"), chop: 12, wantErr: causeTextUTF8.err()},
		{name: "6.4.4 invalid in one frame, \\xf4 then \\x90 in the next chop", give: msg(opText, kosme+"\xf4\x90\x80\x80edited"), chop: 17, wantErr: causeTextUTF8.err()},
		{name: "RFC 8.1 binary messages are not checked", give: msg(opBinary, invalidKosme), want: []got{binMsg(invalidKosme)}},
		{name: "RFC 8.1 invalid UTF-8 in a ping is not checked", give: msg(opPing, "\xff"), want: []got{ping("\xff")}},
	}
	for _, p := range utf8Payloads() {
		for _, how := range []string{"one frame", "octet-wise fragments"} {
			c := protocolCase{name: fmt.Sprintf("%s %q, %s", p.id, p.s, how), give: msg(opText, p.s)}
			if how != "one frame" {
				c.give = octetFrags(p.s)
			}
			if p.valid {
				c.want = []got{text(p.s)}
			} else {
				c.wantErr = causeTextUTF8.err()
			}
			cs = append(cs, c)
		}
	}
	return cs
}

func closeCases() []protocolCase {
	cs := []protocolCase{
		{name: "7.1.1 text, then close", give: cat(msg(opText, "Hello World!"), closeFrame(1000, "")),
			want: []got{text("Hello World!"), closed(1000, "")}},
		{name: "7.1.2 close twice", give: cat(closeFrame(1000, ""), closeFrame(1000, "")), want: []got{closed(1000, "")}},
		{name: "7.1.3 close, then ping", give: cat(closeFrame(1000, ""), msg(opPing, "")), want: []got{closed(1000, "")}},
		{name: "7.1.4 close, then text", give: cat(closeFrame(1000, ""), msg(opText, "Hello World!")), want: []got{closed(1000, "")}},
		{name: "7.1.5 fragment, close, fragment", give: cat(frag(opText, "fragment1"), closeFrame(1000, ""), msg(opContinuation, "fragment2")),
			want: []got{closed(1000, "")}},
		{name: "7.1.6 256 KiB text, close, ping", limit: 1 << 20,
			give: cat(msg(opText, strings.Repeat("BAsd7&jh23", 26214)), closeFrame(1000, ""), msg(opPing, "")),
			want: []got{text(strings.Repeat("BAsd7&jh23", 26214)), closed(1000, "")}},
		{name: "7.3.1 close, empty payload", give: msg(opClose, ""), want: []got{closed(CloseNoStatus, "")}},
		{name: "7.3.2 close, 1-byte payload", give: msg(opClose, "a"), wantErr: causeCloseLength.err()},
		{name: "7.3.3 close with code 1000", give: closeFrame(1000, ""), want: []got{closed(1000, "")}},
		{name: "7.3.4 close with code and reason", give: closeFrame(1000, "Hello World!"), want: []got{closed(1000, "Hello World!")}},
		{name: "7.3.5 close with a 123-byte reason", give: closeFrame(1000, strings.Repeat("*", 123)), want: []got{closed(1000, strings.Repeat("*", 123))}},
		{name: "7.3.6 close with a 126-byte payload", give: closeFrame(1000, strings.Repeat("*", 124)), wantErr: causeControlTooLong.err()},
		{name: "7.5.1 close reason with invalid UTF-8", give: closeFrame(1000, kosme+"\xed\xa0\x80edited"), wantErr: causeCloseUTF8.err()},
		{name: "RFC 5.5.1 close reason split between reads", give: closeFrame(1001, "going away"), chop: 5, want: []got{closed(1001, "going away")}},
	}
	for i, code := range []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999} {
		cs = append(cs, protocolCase{name: fmt.Sprintf("7.7.%d close with valid code %d", i+1, code),
			give: closeFrame(code, ""), want: []got{closed(code, "")}})
	}
	for i, code := range []int{0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999} {
		cs = append(cs, protocolCase{name: fmt.Sprintf("7.9.%d close with invalid code %d", i+1, code),
			give: closeFrame(code, ""), wantErr: causeCloseCode.err()})
	}
	for i, code := range []int{5000, 65535} {
		cs = append(cs, protocolCase{name: fmt.Sprintf("7.13.%d close with invalid code %d", i+1, code),
			give: closeFrame(code, ""), wantErr: causeCloseCode.err()})
	}
	for _, code := range []int{1012, 1013, 1014, 1015} {
		cs = append(cs, protocolCase{name: fmt.Sprintf("RFC 7.4.2 close with code %d, not accepted from a client", code),
			give: closeFrame(code, ""), wantErr: causeCloseCode.err()})
	}
	return cs
}

func limitCases() []protocolCase {
	k := func(n int) string { return strings.Repeat("*", n) }
	fragmented := func(op byte, size, frame int) []byte {
		var out []byte
		for off := 0; off < size; off += frame {
			head := byte(opContinuation)
			if off == 0 {
				head = op
			}
			if off+frame >= size {
				head |= finBit
			}
			out = append(out, wire{head: head, payload: bytes.Repeat([]byte{'*'}, min(frame, size-off))}.bytes()...)
		}
		return out
	}
	var many []byte
	var manyWant []got
	for range 1000 {
		many = append(many, msg(opText, k(64))...)
		manyWant = append(manyWant, text(k(64)))
	}
	cs := []protocolCase{
		{name: "9.1.1 text, 64 KiB", give: msg(opText, k(64<<10)), want: []got{text(k(64 << 10))}},
		{name: "9.1.2 text, 256 KiB", limit: 256 << 10, give: msg(opText, k(256<<10)), want: []got{text(k(256 << 10))}},
		{name: "9.2.1 binary, 64 KiB", give: msg(opBinary, k(64<<10)), want: []got{binMsg(k(64 << 10))}},
		{name: "9.7.3 1000 text messages of 64 bytes", give: many, want: manyWant},
		{name: "limit: a message of exactly the limit", limit: 1000, give: msg(opText, k(1000)), want: []got{text(k(1000))}},
		{name: "limit: one byte over, in one frame", limit: 1000, give: msg(opText, k(1001)), wantErr: causeTooBig.err()},
		{name: "limit: over in the third fragment", limit: 1000,
			give: cat(frag(opText, k(400)), frag(opContinuation, k(400)), msg(opContinuation, k(201))), wantErr: causeTooBig.err()},
		{name: "limit: control frames do not count", limit: 10,
			give: cat(frag(opText, k(5)), msg(opPing, k(125)), msg(opContinuation, k(5))), want: []got{ping(k(125)), text(k(10))}},
		{name: "limit: the count starts again with each message", limit: 10,
			give: cat(msg(opText, k(10)), frag(opBinary, k(5)), msg(opContinuation, k(5))), want: []got{text(k(10)), binMsg(k(10))}},
		{name: "limit: a declared 1 TiB frame fails before any payload", give: []byte{finBit | opBinary, maskBit | 127, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4}, wantErr: causeTooBig.err()},
		{name: "limit: off (negative)", limit: -1, give: msg(opBinary, k(200<<10)), want: []got{binMsg(k(200 << 10))}},
	}
	for _, frame := range []int{64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10} {
		cs = append(cs,
			protocolCase{name: fmt.Sprintf("9.3.x text, 256 KiB in %d-byte fragments", frame), limit: 256 << 10,
				give: fragmented(opText, 256<<10, frame), want: []got{text(k(256 << 10))}},
			protocolCase{name: fmt.Sprintf("9.4.x binary, 256 KiB in %d-byte fragments, over a 255 KiB limit", frame), limit: 255 << 10,
				give: fragmented(opBinary, 256<<10, frame), wantErr: causeTooBig.err()},
		)
	}
	return cs
}

func allProtocolCases() []protocolCase {
	var cs []protocolCase
	for _, f := range []func() []protocolCase{framingCases, pingCases, reservedBitCases, opcodeCases,
		fragmentationCases, utf8Cases, closeCases, limitCases} {
		cs = append(cs, f()...)
	}
	return cs
}

// TestAutobahn runs each case with the stream in one piece, byte by byte,
// in random chunks and in the case's own chops: all must agree with the
// expectation, which makes the reader's result independent of how TCP cuts
// the stream.
func TestAutobahn(t *testing.T) {
	for i, tc := range allProtocolCases() {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{MaxMessageSize: tc.limit}
			want := outcome{events: tc.want, closed: len(tc.want) > 0 && tc.want[len(tc.want)-1].kind == KindClose, idle: !tc.partial}
			if tc.wantErr != nil {
				want.err = tc.wantErr
			}
			for how, sizes := range chunkings(len(tc.give), tc.chop, uint64(i)) {
				o := feed(t, cfg, tc.give, sizes)
				if !o.same(want) {
					t.Fatalf("%s:\n got %v\nwant %v", how, o, want)
				}
				if lim := tc.limit; lim > 0 && o.maxBuffered > int(lim)+maxControlBytes {
					t.Errorf("%s: buffered %d bytes with a limit of %d", how, o.maxBuffered, lim)
				}
			}
		})
	}
}

// TestAutobahnFailFast mirrors 6.4.1-6.4.4 and 6.3.2 strictly: fed byte by
// byte, the reader fails on the very byte that makes the text impossible,
// before the rest of the frame or message arrives.
func TestAutobahnFailFast(t *testing.T) {
	const headerLen = 6 // 2 bytes and a masking key, for payloads up to 125
	tests := []struct {
		name   string
		give   [][]byte // frames
		wantAt int      // offset of the failing byte in the stream
	}{
		{name: "6.4.1 fails in the 2nd fragment, at \\x90", give: [][]byte{frag(opText, kosme), frag(opContinuation, "\xf4\x90\x80\x80"), msg(opContinuation, "edited")},
			wantAt: headerLen + len(kosme) + headerLen + 1},
		{name: "6.4.2 fails at \\x90 in the 2nd fragment after \\xf4 ends the 1st", give: [][]byte{frag(opText, kosme+"\xf4"), frag(opContinuation, "\x90"), msg(opContinuation, "\x80\x80edited")},
			wantAt: headerLen + len(kosme) + 1 + headerLen},
		{name: "6.4.3 fails mid-frame at \\x90", give: [][]byte{msg(opText, kosme+"\xf4\x90\x80\x80edited")},
			wantAt: headerLen + len(kosme) + 1},
		{name: "6.3.2 fails at \\xa0 after \\xed (surrogate)", give: [][]byte{msg(opText, kosme+"\xed\xa0\x80edited")},
			wantAt: headerLen + len(kosme) + 1},
		{name: "6.12 fails at a lone continuation byte", give: [][]byte{frag(opText, "ab"), msg(opContinuation, "\x80cd")},
			wantAt: headerLen + 2 + headerLen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := cat(tt.give...)
			o := feed(t, Config{}, data, chunkings(len(data), 0, 0)["bytewise"])
			if o.err != causeTextUTF8.err() {
				t.Fatalf("err = %v, want %v", o.err, causeTextUTF8.err())
			}
			if o.failAt != tt.wantAt+1 {
				t.Fatalf("failed after %d bytes, want %d (on the byte at offset %d)", o.failAt, tt.wantAt+1, tt.wantAt)
			}
		})
	}
}
