//go:build race

package cmd

// raceEnabled: the race detector slows WebRTC transfers about fivefold.
const raceEnabled = true
