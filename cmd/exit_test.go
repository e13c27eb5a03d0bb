package cmd

import (
	"fmt"
	"strings"
	"testing"

	"github.com/p2pxfer/p2pxfer/chunker"
	"github.com/p2pxfer/p2pxfer/pake"
	"github.com/p2pxfer/p2pxfer/peer"
)

// TestExitManifestVersion: a manifest of another version is a version
// mismatch for the user, not a sign of tampering, although it is also a bad
// manifest.
func TestExitManifestVersion(t *testing.T) {
	_, err := chunker.DecodeManifest([]byte(`{"v":1,"chunk_size":16384,"files":[]}`))
	code, hint := exitCode(fmt.Errorf("recv: %w", err))
	if code != ExitError || !strings.Contains(hint, "same p2pxfer version") {
		t.Errorf("exit %d, %q for %v", code, hint, err)
	}
	_, err = chunker.DecodeManifest([]byte(`{"v":3,"chunk_size":16384,"files":[]}`))
	if code, _ := exitCode(err); code != ExitVerify {
		t.Errorf("bad manifest: exit %d for %v", code, err)
	}
}

// TestExitSignallingVersion: a source of another p2pxfer version, whose
// sealed signalling differs, is a version mismatch for the user, also
// when it left the receiver with no source.
func TestExitSignallingVersion(t *testing.T) {
	mismatch := fmt.Errorf("%w: sealed signalling version 1, this end speaks 2", peer.ErrVersion)
	for _, err := range []error{
		fmt.Errorf("peer receive: %w", mismatch),
		fmt.Errorf("peer receive: %w: no other source: %w", peer.ErrNoSources, mismatch),
	} {
		if code, hint := exitCode(err); code != ExitError || !strings.Contains(hint, "same p2pxfer version") {
			t.Errorf("exit %d, %q for %v", code, hint, err)
		}
	}
}

// TestExitWrongPasswordOnLAN: a wrong password to a room found on the LAN
// may be the right one given to another device that answered for it.
func TestExitWrongPasswordOnLAN(t *testing.T) {
	err := fmt.Errorf("peer receive: %w", pake.ErrWrongPassword)
	if code, hint := exitCode(err); code != ExitWrongPassword || strings.Contains(hint, "another device") {
		t.Errorf("with --signal: exit %d, %q", code, hint)
	}
	if code, hint := exitCode(fmt.Errorf("%w (%w)", err, errFoundOnLAN)); code != ExitWrongPassword || !strings.Contains(hint, "another device") {
		t.Errorf("found on the LAN: exit %d, %q", code, hint)
	}
}

// TestExitSourceChanged: a file that changed at the sender reads the same
// for no two of its cases: every file withdrawn while serving, one that
// changed while it was being hashed (nothing was offered yet), and the
// receiver's side.
func TestExitSourceChanged(t *testing.T) {
	for _, c := range []struct {
		err        error
		code       int
		say, never string
	}{
		{fmt.Errorf("peer serve: %w", peer.ErrAllWithdrawn), ExitError, "every file changed", "chunker"},
		{&chunker.PathError{Op: chunker.OpOpen, Path: "/x/a.bin", Err: fmt.Errorf("%w: size 1 -> 2", chunker.ErrSourceChanged)}, ExitError, "/x/a.bin: file changed since it was hashed", "every file"},
		{&chunker.PathError{Op: chunker.OpOpen, Path: "/x/a.bin", Err: fmt.Errorf("%w: size 1 -> 2", chunker.ErrSourceChanged)}, ExitError, "/x/a.bin", "chunker"},
		{fmt.Errorf("peer receive: %w", &peer.ChangedError{File: "a.bin", Sender: true}), ExitConnect, "changed on the sender's disk", "peer receive"},
	} {
		code, _ := exitCode(c.err)
		msg := summary(c.err)
		if code != c.code || !strings.Contains(msg, c.say) || strings.Contains(msg, c.never) {
			t.Errorf("%v: exit %d, %q; want %d, saying %q and not %q", c.err, code, msg, c.code, c.say, c.never)
		}
	}
}
