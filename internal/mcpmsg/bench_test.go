package mcpmsg

import "testing"

// BenchmarkDecode reads a tools/call as the node reads every client
// request, and an upstream's answer as ward's upstream client reads it.
func BenchmarkDecode(b *testing.B) {
	for _, c := range []struct{ name, msg string }{
		{"request", `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"_meta":{"progressToken":7},"name":"up.echo","arguments":{"text":"hello"}}}`},
		{"answer", `{"jsonrpc":"2.0","id":12,"result":{"content":[{"type":"text","text":"hello"}],"structuredContent":{"text":"hello"}}}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			data := []byte(c.msg)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
