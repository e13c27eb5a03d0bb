package peer

import "testing"

// BenchmarkDataFrames is the per-byte framing work of the data channel on
// both sides, without the network: a 256 KiB piece cut into 'D' frames,
// each parsed and appended to a piece buffer, as sendPieces and readSource
// do. Regressions here cost throughput directly.
func BenchmarkDataFrames(b *testing.B) {
	piece := make([]byte, 256<<10)
	for i := range piece {
		piece[i] = byte(i)
	}
	frame := make([]byte, 0, maxFrame)
	dst := make([]byte, 0, len(piece))
	b.SetBytes(int64(len(piece)))
	b.ReportAllocs()
	for b.Loop() {
		dst = dst[:0]
		for off := 0; off < len(piece); off += maxDataPayload {
			end := min(off+maxDataPayload, len(piece))
			frame = append(appendDataHeader(frame[:0], 7, uint32(off)), piece[off:end]...)
			f, err := parseFrame(frame)
			if err != nil || int(f.Offset) != len(dst) {
				b.Fatal(err)
			}
			dst = append(dst, f.Data...)
		}
	}
}

// BenchmarkListFrames: requests and have-updates for 4096 pieces.
func BenchmarkListFrames(b *testing.B) {
	ids := make([]uint32, 4096)
	for i := range ids {
		ids[i] = uint32(i)
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, fr := range listFrames(frameHave, ids) {
			if _, err := parseFrame(fr); err != nil {
				b.Fatal(err)
			}
		}
	}
}
