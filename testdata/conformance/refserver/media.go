package main

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/png"
)

// redPixelPNG is a 1x1 red PNG, the image every image content and the binary
// resource carry.
var redPixelPNG = func() []byte {
	img := image.NewRGBA(image.Rect(0, 0, 1, 1))
	img.Set(0, 0, color.RGBA{R: 0xff, A: 0xff})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		panic(err)
	}
	return b.Bytes()
}()

// silentWAV is a tenth of a second of silence, 8 kHz mono 8-bit PCM, in a
// RIFF/WAVE container: the audio content's data.
var silentWAV = func() []byte {
	const rate, samples = 8000, 800
	var b bytes.Buffer
	put := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	b.WriteString("RIFF")
	put(uint32(36 + samples))
	b.WriteString("WAVEfmt ")
	put(uint32(16))   // fmt chunk size
	put(uint16(1))    // PCM
	put(uint16(1))    // mono
	put(uint32(rate)) // sample rate
	put(uint32(rate)) // byte rate: rate × 1 channel × 1 byte
	put(uint16(1))    // block align
	put(uint16(8))    // bits per sample
	b.WriteString("data")
	put(uint32(samples))
	b.Write(bytes.Repeat([]byte{0x80}, samples)) // 8-bit PCM silence is 128
	return b.Bytes()
}()
