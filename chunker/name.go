package chunker

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on names. 255 bytes is the component limit of every common file
// system; 4096 is Linux's PATH_MAX.
const (
	MaxNameLen      = 4096
	MaxComponentLen = 255
)

// Suffixes of the files a Writer keeps next to a final file. Manifest names
// may not end in them, or a hostile manifest could make one file's final name
// be another file's partial or state file.
const (
	partSuffix  = ".p2pxfer-part"
	stateSuffix = ".p2pxfer-state"
	tmpSuffix   = ".p2pxfer-tmp"
)

// PartName is the name of the partial file a Writer fills for name. It sits
// next to the final file so the final rename never crosses file systems.
func PartName(name string) string { return name + partSuffix }

// StateName is the name of the resume-state file a Writer keeps for name.
func StateName(name string) string { return name + stateSuffix }

// tmpName is where a state file is written before being renamed over
// StateName, so a crash never leaves a torn state.
func tmpName(name string) string { return name + tmpSuffix }

// CheckName reports whether name is safe to create under a destination
// directory on any platform we run on: a slash-separated relative path with
// no way to climb out (no "..", no leading '/', no backslash that Windows
// would treat as a separator) and nothing that could fool a terminal or a
// human reading it (control characters, line/paragraph separators, bidi
// overrides that make "exe.txt" look like "txt.exe"). The error wraps
// ErrBadName.
func CheckName(name string) error {
	if reason := nameProblem(name); reason != "" {
		return fmt.Errorf("chunker check name %q: %w: %s", name, ErrBadName, reason)
	}
	return nil
}

// nameProblem returns why name is unsafe, or "" if it is fine.
func nameProblem(name string) string {
	switch {
	case name == "":
		return "empty"
	case len(name) > MaxNameLen:
		return fmt.Sprintf("longer than %d bytes", MaxNameLen)
	case !utf8.ValidString(name):
		return "not valid UTF-8"
	}
	for _, r := range name {
		switch {
		case r == '\\':
			return "contains a backslash"
		case unicode.Is(unicode.Cc, r):
			return "contains a control character"
		case r == '\u2028' || r == '\u2029':
			return "contains a line or paragraph separator"
		case r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069':
			return "contains a bidirectional override"
		}
	}
	for rest := name; ; {
		comp, tail, more := strings.Cut(rest, "/")
		switch {
		case comp == "":
			return "empty path component (leading, trailing or double '/')"
		case comp == "." || comp == "..":
			return "'.' or '..' path component"
		case len(comp) > MaxComponentLen:
			return fmt.Sprintf("path component longer than %d bytes", MaxComponentLen)
		}
		if !more {
			return ""
		}
		rest = tail
	}
}

// reservedProblem returns why name collides with our own bookkeeping files,
// or "". Any component counts, since a directory "x.p2pxfer-part" would block
// the partial file of "x". Case is folded because the destination may be a
// case-insensitive file system.
func reservedProblem(name string) string {
	for comp := range strings.SplitSeq(name, "/") {
		lc := strings.ToLower(comp)
		for _, s := range [...]string{partSuffix, stateSuffix, tmpSuffix} {
			if strings.HasSuffix(lc, s) {
				return "ends in reserved suffix " + s
			}
		}
	}
	return ""
}
