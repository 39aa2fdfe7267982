// Package hostile builds files that lie: image headers that claim enormous
// sizes, archive members that inflate to gigabytes, headers that promise more
// than their file holds. Tests hand them to every entry point that reads a
// user's file, which must answer with an error or a counted skip, never a
// crash or an allocation the size of the lie.
package hostile

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
	"io"
)

// PNG is a valid PNG signature, an IHDR chunk claiming w×h RGBA pixels, and
// one small IDAT chunk (the first row's filter byte and a few pixels): 72
// bytes. A decoder that trusts the header allocates 4·w·h bytes when it
// reaches the IDAT (Go's image/png does: 40 GB for 100,000 × 100,000).
func PNG(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 6 // 8 bits, RGBA
	chunk(&b, "IHDR", ihdr)
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(make([]byte, 17))
	zw.Close()
	chunk(&b, "IDAT", z.Bytes())
	chunk(&b, "IEND", nil)
	return b.Bytes()
}

func chunk(b *bytes.Buffer, typ string, data []byte) {
	binary.Write(b, binary.BigEndian, uint32(len(data)))
	crc := crc32.NewIEEE()
	crc.Write([]byte(typ))
	crc.Write(data)
	b.WriteString(typ)
	b.Write(data)
	binary.Write(b, binary.BigEndian, crc.Sum32())
}

// JPEG is a baseline JFIF's start (SOI, APP0, one quantisation table, SOF0)
// claiming w×h pixels in three components; JPEG allows at most 65,535 per
// side.
func JPEG(w, h uint16) []byte {
	var b bytes.Buffer
	b.Write([]byte{0xff, 0xd8})
	b.Write([]byte{0xff, 0xe0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0})
	b.Write([]byte{0xff, 0xdb, 0x00, 0x43, 0x00}) // DQT, table 0
	b.Write(bytes.Repeat([]byte{1}, 64))
	b.Write([]byte{0xff, 0xc0, 0x00, 0x11, 0x08})
	binary.Write(&b, binary.BigEndian, h)
	binary.Write(&b, binary.BigEndian, w)
	b.Write([]byte{0x03, 0x01, 0x11, 0x00, 0x02, 0x11, 0x00, 0x03, 0x11, 0x00})
	b.Write([]byte{0xff, 0xd9})
	return b.Bytes()
}

// GIF is a GIF89a header with a logical screen of w×h (at most 65,535 a side).
func GIF(w, h uint16) []byte {
	var b bytes.Buffer
	b.WriteString("GIF89a")
	binary.Write(&b, binary.LittleEndian, w)
	binary.Write(&b, binary.LittleEndian, h)
	b.Write([]byte{0x80, 0, 0}) // a global colour table of 2 entries
	b.Write([]byte{0, 0, 0, 255, 255, 255})
	b.WriteByte(0x3b)
	return b.Bytes()
}

// BMP is a 24-bit BMP header claiming w×h pixels, with no pixel data.
func BMP(w, h int32) []byte {
	var b bytes.Buffer
	b.WriteString("BM")
	binary.Write(&b, binary.LittleEndian, uint32(54))
	binary.Write(&b, binary.LittleEndian, uint32(0))
	binary.Write(&b, binary.LittleEndian, uint32(54))
	binary.Write(&b, binary.LittleEndian, uint32(40))
	binary.Write(&b, binary.LittleEndian, w)
	binary.Write(&b, binary.LittleEndian, h)
	binary.Write(&b, binary.LittleEndian, uint16(1))
	binary.Write(&b, binary.LittleEndian, uint16(24))
	b.Write(make([]byte, 24))
	return b.Bytes()
}

// WebP is an extended-format (VP8X) WebP claiming a canvas of w×h, with no
// image data (golang.org/x/image/webp itself refuses canvases over 2^31
// pixels).
func WebP(w, h uint32) []byte {
	vp8x := make([]byte, 10)
	put24 := func(p []byte, v uint32) { p[0], p[1], p[2] = byte(v), byte(v>>8), byte(v>>16) }
	put24(vp8x[4:], w-1)
	put24(vp8x[7:], h-1)
	var body bytes.Buffer
	body.WriteString("WEBP")
	body.WriteString("VP8X")
	binary.Write(&body, binary.LittleEndian, uint32(len(vp8x)))
	body.Write(vp8x)
	var b bytes.Buffer
	b.WriteString("RIFF")
	binary.Write(&b, binary.LittleEndian, uint32(body.Len()))
	b.Write(body.Bytes())
	return b.Bytes()
}

// zeros streams n zero bytes without holding them.
type zeros struct{ n int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	k := int64(len(p))
	if k > z.n {
		k = z.n
	}
	clear(p[:k])
	z.n -= k
	return int(k), nil
}

// TarGz is a .tar.gz whose one member, name, holds size zero bytes: a few
// megabytes on disk for gigabytes inflated.
func TarGz(name string, size int64) []byte {
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg})
	io.Copy(tw, &zeros{size})
	tw.Close()
	zw.Close()
	return b.Bytes()
}

// TarGzMany is a .tar.gz of n members of size zero bytes each.
func TarGzMany(prefix string, n int, size int64) []byte {
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	for i := 0; i < n; i++ {
		tw.WriteHeader(&tar.Header{Name: prefix + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + ".png", Mode: 0o644, Size: size, Typeflag: tar.TypeReg})
		io.Copy(tw, &zeros{size})
	}
	tw.Close()
	zw.Close()
	return b.Bytes()
}

// Zip is a .zip whose one member, name, deflates size zero bytes.
func Zip(name string, size int64) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, _ := zw.Create(name)
	io.Copy(w, &zeros{size})
	zw.Close()
	return b.Bytes()
}

// Gzip compresses size zero bytes after prefix.
func Gzip(prefix []byte, size int64) []byte {
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	zw.Write(prefix)
	io.Copy(zw, &zeros{size})
	zw.Close()
	return b.Bytes()
}

// IDX is an IDX header of uint8 with the given dimensions and no data.
func IDX(dims ...uint32) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, uint32(0x0800|len(dims)))
	for _, d := range dims {
		binary.Write(&b, binary.BigEndian, d)
	}
	return b.Bytes()
}
