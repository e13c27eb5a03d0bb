package chunker

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	long := strings.Repeat("a", 255)
	tests := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"file.txt", true},
		{"dir/sub/file.txt", true},
		{"-rf", true},
		{"C:stuff", true},
		{"..a", true},
		{"a..", true},
		{"...", true},
		{"héllo wörld ☃.txt", true},
		{"日本語/ファイル", true},
		{long, true},
		{long + "/" + long, true},
		{"", false},
		{"../x", false},
		{"..", false},
		{".", false},
		{"./a", false},
		{"a/.", false},
		{"a/./b", false},
		{"/etc/passwd", false},
		{"a/../../b", false},
		{"a/..", false},
		{"a\\b", false},
		{"..\\..\\windows", false},
		{"a/", false},
		{"a//b", false},
		{"/", false},
		{"x\x1b[2J", false},
		{"x\x00y", false},
		{"x\ny", false},
		{"x\ty", false},
		{"x\x7f", false},
		{"x\u0085y", false}, // C1 next line
		{"\u202etxt.exe", false},
		{"a\u202ab", false},
		{"a\u2066b", false},
		{"a\u2069b", false},
		{"a\u2028b", false},
		{"a\u2029b", false},
		{strings.Repeat("a", 256), false},
		{"d/" + strings.Repeat("a", 300), false},
		{strings.Repeat("a/", 2048) + "b", false}, // 4097 bytes
		{"\xff\xfe", false},
		{"a\xc0\xafb", false}, // overlong '/'
	}
	for _, tt := range tests {
		err := CheckName(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("CheckName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrBadName) {
			t.Errorf("CheckName(%q) = %v, not ErrBadName", tt.name, err)
		}
	}
}

func TestReservedNames(t *testing.T) {
	for _, n := range []string{"x.p2pxfer-part", "x.P2PXFER-State", "d.p2pxfer-tmp/y", "a/b.p2pxfer-part/c"} {
		if reservedProblem(n) == "" {
			t.Errorf("%q not reserved", n)
		}
	}
	for _, n := range []string{"x.p2pxfer-partial", "p2pxfer-part", "x.p2pxfer", "x"} {
		if p := reservedProblem(n); p != "" {
			t.Errorf("%q reserved: %s", n, p)
		}
	}
	if PartName("a/b") != "a/b.p2pxfer-part" || StateName("a") != "a.p2pxfer-state" {
		t.Error("PartName/StateName changed")
	}
}
