package cmd

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/p2pxfer/p2pxfer/peer"
	"github.com/p2pxfer/p2pxfer/room"
)

// checkInterfaces refuses --interface names this host has no interface
// by: with none of them, nothing could connect, and the failure would
// look like a firewall's.
func checkInterfaces(names []string) error {
	if len(names) == 0 {
		return nil
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return fmt.Errorf("list network interfaces: %w", err)
	}
	var have []string
	for _, i := range ifs {
		have = append(have, i.Name)
	}
	for _, n := range names {
		if !slices.Contains(have, n) {
			return usagef("--interface %s: no such network interface here (there are: %s)", quoteName(n), strings.Join(have, ", "))
		}
	}
	return nil
}

// resumeElsewhere is how a download whose room is gone resumes.
const resumeElsewhere = "when the sender runs send again with the same files, recv of its new room ID into the same --out resumes it"

// keptHint says that a failed download is kept, and how it resumes: the
// same command while its room lives, a new room once the sender left.
func keptHint(err error) string {
	if senderGone(err) {
		return "the partial download is kept; " + resumeElsewhere
	}
	return "the partial download is kept; run the same command again to resume"
}

// senderGone reports whether err says that the room, or its sender, is
// gone for good.
func senderGone(err error) bool {
	return errors.Is(err, peer.ErrSenderLeft) || errors.Is(err, room.ErrRoomClosed)
}
