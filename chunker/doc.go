// Package chunker turns files into a content-addressed manifest of fixed-size
// chunks on the sending side, and rebuilds them on the receiving side from
// chunks that may arrive in any order, from any number of peers, across
// restarts.
//
// The sender calls OpenSource, which hashes every file once and keeps it open
// so ReadChunk can serve chunks while detecting edits made after hashing. The
// receiver decodes the manifest with DecodeManifest, which treats every name,
// size and count in it as hostile, and feeds chunks to a Writer. A Writer
// checks each chunk against the manifest before it touches the disk, confines
// every file operation to the destination directory through os.Root, keeps
// resume state next to each partial file, and makes a final file appear only
// once it is complete. Chunk hashes are links of one SHA-256 chain per file
// (chain.go), so a chunk is checked on its own, in any order, and a file
// whose chunks all passed has its whole-file SHA-256, with no second pass.
//
// With forward error correction (OpenSourceFEC, see fec.go) the manifest
// also groups chunks into Reed-Solomon stripes with parity pieces, which
// Source.ReadPiece serves; a receiver rebuilds the missing chunks of a
// stripe from enough of its pieces with Manifest.Reconstruct, then
// writes them like any other chunk.
//
// A Writer can also seed: Writer.ReadChunk and Writer.ReadPiece serve the
// chunks it has verified, and the parity of stripes it holds whole, both
// while it is receiving and after Finish until Close, checking every chunk
// against the manifest again as it is read.
//
// Nothing here prints, exits or talks to the network; errors wrap the
// sentinels in errors.go so callers can map them to messages and exit codes.
package chunker
