package lane

import (
	"encoding/json"
	"os"
	"testing"
)

// TestDecodeSignalJSTable checks decodeSignal against the table the
// browser page's signal.js is tested with (browser/jstest/testdata/
// signal.json), so both ends accept and refuse the same sealed messages.
func TestDecodeSignalJSTable(t *testing.T) {
	b, err := os.ReadFile("../../browser/jstest/testdata/signal.json")
	if err != nil {
		t.Fatal(err)
	}
	var table struct {
		Cases []struct {
			What string `json:"what"`
			JSON string `json:"json"`
			OK   bool   `json:"ok"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(b, &table); err != nil {
		t.Fatal(err)
	}
	if len(table.Cases) < 30 {
		t.Fatalf("%d cases", len(table.Cases))
	}
	for _, c := range table.Cases {
		_, err := decodeSignal([]byte(c.JSON))
		if (err == nil) != c.OK {
			t.Errorf("%s: decodeSignal error %v, table says ok=%v", c.What, err, c.OK)
		}
	}
}
