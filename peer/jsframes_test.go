package peer

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"slices"
	"testing"
)

// TestParseFrameJSTable checks parseFrame against the table the browser
// page's frames.js is tested with (browser/jstest/testdata/frames.json),
// so the two decoders of data channel frames accept and refuse alike.
func TestParseFrameJSTable(t *testing.T) {
	b, err := os.ReadFile("../browser/jstest/testdata/frames.json")
	if err != nil {
		t.Fatal(err)
	}
	var table struct {
		Cases []struct {
			What    string   `json:"what"`
			Frame   string   `json:"frame"`
			Fill    byte     `json:"fill"`
			Repeat  int      `json:"repeat"`
			OK      bool     `json:"ok"`
			Type    string   `json:"type"`
			Index   *uint32  `json:"index"`
			Offset  *uint32  `json:"offset"`
			Total   *uint32  `json:"total"`
			DataLen *int     `json:"dataLen"`
			List    []uint32 `json:"list"`
			ListLen *int     `json:"listLen"`
			Flags   *byte    `json:"flags"`
			File    *uint32  `json:"file"`
			Why     *string  `json:"why"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(b, &table); err != nil {
		t.Fatal(err)
	}
	if len(table.Cases) < 50 {
		t.Fatalf("%d cases", len(table.Cases))
	}
	for _, c := range table.Cases {
		frame, err := hex.DecodeString(c.Frame)
		if err != nil {
			t.Fatal(err)
		}
		frame = append(frame, bytes.Repeat([]byte{c.Fill}, c.Repeat)...)
		f, err := parseFrame(frame)
		if (err == nil) != c.OK {
			t.Errorf("%s: parseFrame error %v, table says ok=%v", c.What, err, c.OK)
			continue
		}
		if !c.OK {
			continue
		}
		check := func(what string, ok bool) {
			if !ok {
				t.Errorf("%s: %s differs from the table", c.What, what)
			}
		}
		check("type", string(rune(f.Type)) == c.Type)
		check("index", c.Index == nil || *c.Index == f.Index)
		check("offset", c.Offset == nil || *c.Offset == f.Offset)
		check("total", c.Total == nil || *c.Total == f.Total)
		check("data length", c.DataLen == nil || *c.DataLen == len(f.Data))
		check("list", c.List == nil || slices.Equal(c.List, f.List))
		check("list length", c.ListLen == nil || *c.ListLen == len(f.List))
		check("flags", c.Flags == nil || *c.Flags == f.Flags)
		check("file", c.File == nil || *c.File == f.File)
		check("reason", c.Why == nil || *c.Why == string(f.Data))
	}
}
