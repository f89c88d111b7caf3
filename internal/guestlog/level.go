package guestlog

import (
	"bytes"
	"log/slog"
)

// levelScan bounds how far into a line a "level=" or a JSON "level" member is
// looked for (a logger puts it first or after the time).
const levelScan = 128

// Level reads the level a line of output names, the way common loggers write
// it, so a guest's (or a library's) "ERROR ..." line is logged as an error and
// not at its stream's level:
//
//   - a level word first, alone or in brackets, then a space, a colon or the
//     end: "ERROR db down", "error: db down", "[WARN] slow", "INFO:app:started"
//     (Python's logging); after a timestamp too ("2026/12/07 10:00:00 INFO hi",
//     as Go's log and slog's default logger write, or RFC 3339);
//   - logfmt's level=... near the start (slog's TextHandler, logrus, zap);
//   - a JSON object's "level" member near the start (slog's JSONHandler).
//
// The words are DEBUG and TRACE, INFO and NOTICE, WARN and WARNING, ERROR, ERR,
// FATAL, CRITICAL and CRIT, in any case. For the first form, msg is the line
// after the level word (the record has its own time and level); for the
// others, msg is the line. ok is false when the line names no level.
func Level(line []byte) (lv slog.Level, msg []byte, ok bool) {
	if len(line) == 0 {
		return 0, line, false
	}
	if line[0] == '{' {
		return jsonLevel(line)
	}
	s := skipTimestamp(line)
	bracket := len(s) > 0 && s[0] == '['
	if bracket {
		s = s[1:]
	}
	n := 0
	for n < len(s) && isLetter(s[n]) {
		n++
	}
	if n > 0 && (n == len(s) || s[n] == ' ' || s[n] == ':' || s[n] == '\t' || (bracket && s[n] == ']')) {
		if lv, ok := levelWord(s[:n]); ok && (!bracket || (n < len(s) && s[n] == ']')) {
			rest := s[n:]
			if bracket {
				rest = rest[1:]
			}
			for len(rest) > 0 && (rest[0] == ' ' || rest[0] == ':' || rest[0] == '\t') {
				rest = rest[1:]
			}
			return lv, rest, true
		}
	}
	// logfmt: level=WORD at the start or after a space.
	head := line[:min(len(line), levelScan)]
	for off := 0; ; {
		i := bytes.Index(head[off:], []byte("level="))
		if i < 0 {
			break
		}
		i += off
		if i == 0 || head[i-1] == ' ' {
			w := line[i+len("level="):]
			if len(w) > 0 && w[0] == '"' {
				w = w[1:]
			}
			n := 0
			for n < len(w) && isLetter(w[n]) {
				n++
			}
			if lv, ok := levelWord(w[:n]); ok {
				return lv, line, true
			}
		}
		off = i + 1
	}
	return 0, line, false
}

// jsonLevel reads "level":"WORD" near the start of a JSON object.
func jsonLevel(line []byte) (slog.Level, []byte, bool) {
	head := line[:min(len(line), levelScan)]
	i := bytes.Index(head, []byte(`"level"`))
	if i < 0 {
		return 0, line, false
	}
	w := line[i+len(`"level"`):]
	for len(w) > 0 && (w[0] == ' ' || w[0] == ':') {
		w = w[1:]
	}
	if len(w) == 0 || w[0] != '"' {
		return 0, line, false
	}
	w = w[1:]
	n := 0
	for n < len(w) && isLetter(w[n]) {
		n++
	}
	if n == len(w) || w[n] != '"' {
		return 0, line, false
	}
	lv, ok := levelWord(w[:n])
	return lv, line, ok
}

// skipTimestamp returns s after a leading date and time ("2006/01/02 15:04:05",
// "2006-01-02T15:04:05.000Z07:00", with fractions and a zone) and the spaces
// after it, or s itself.
func skipTimestamp(s []byte) []byte {
	const pat = "dddd-dd-dd dd:dd:dd" // '-' stands for '-' or '/', ' ' for ' ' or 'T'
	if len(s) < len(pat) {
		return s
	}
	for i := 0; i < len(pat); i++ {
		c := s[i]
		switch pat[i] {
		case 'd':
			if c < '0' || c > '9' {
				return s
			}
		case '-':
			if c != '-' && c != '/' {
				return s
			}
		case ' ':
			if c != ' ' && c != 'T' {
				return s
			}
		case ':':
			if c != ':' {
				return s
			}
		}
	}
	i := len(pat)
	for i < len(s) && s[i] != ' ' && s[i] != '\t' {
		i++ // fractions, zone
	}
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return s[i:]
}

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// levelWord maps a level word, in any case, to its level.
func levelWord(w []byte) (slog.Level, bool) {
	if len(w) < 3 || len(w) > 8 {
		return 0, false
	}
	var b [8]byte
	for i, c := range w {
		b[i] = c | 0x20 // letters only: lower case
	}
	switch string(b[:len(w)]) {
	case "debug", "trace":
		return slog.LevelDebug, true
	case "info", "notice":
		return slog.LevelInfo, true
	case "warn", "warning":
		return slog.LevelWarn, true
	case "error", "err", "fatal", "critical", "crit":
		return slog.LevelError, true
	}
	return 0, false
}
