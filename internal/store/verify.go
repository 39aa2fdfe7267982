package store

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strings"
)

// Object is what a store reports about an object: its size and the
// checksums it keeps of its bytes.
type Object struct {
	Size int64
	// CRC32C is Google Cloud Storage's checksum of the whole object
	// (HasCRC32C says it is given).
	CRC32C    uint32
	HasCRC32C bool
	// CRC32 is S3's full-object CRC32 (base64, as S3 gives it), when the
	// object was uploaded with one and its checksum type is FULL_OBJECT.
	CRC32 string
	// ETag is S3's entity tag: the MD5 of the bytes for an object put in one
	// part, MD5(part MD5s)-N for one uploaded in N parts.
	ETag string
}

// stat is the stores' metadata request; set by Enable.
var stat func(ctx context.Context, url string) (Object, error)

// Stat is what the store reports about the object url.
func Stat(ctx context.Context, url string) (Object, error) {
	if !IsURL(url) {
		return Object{}, fmt.Errorf("%s: not an object-store URL", url)
	}
	if stat == nil {
		return Object{}, fmt.Errorf("%s: %w", url, ErrNoStores)
	}
	o, err := stat(ctx, url)
	if err != nil {
		return Object{}, notExist(url, err)
	}
	return o, nil
}

// UploadPartSize is the part size of S3 multipart uploads (the AWS SDK
// upload manager's default, which Beam's S3 writer uses): what an ETag of
// an object of N parts is computed over.
const UploadPartSize = 5 << 20

// Verify checks the object url against the local file: its size, and a
// checksum the store reports (GCS's CRC32C; S3's full-object CRC32, else
// its ETag), computed again from the file. The error names the object and
// what differs.
func Verify(ctx context.Context, url, local string) error {
	o, err := Stat(ctx, url)
	if err != nil {
		return err
	}
	f, err := os.Open(local)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if o.Size != fi.Size() {
		return fmt.Errorf("%s: %d bytes in the store, %d in %s: incomplete or another file", url, o.Size, fi.Size(), local)
	}
	crcC := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	crcI := crc32.NewIEEE()
	whole := md5.New()
	var parts []byte // the MD5s of UploadPartSize parts
	part := md5.New()
	buf := make([]byte, 1<<20)
	var inPart int64
	for {
		n, err := f.Read(buf)
		b := buf[:n]
		crcC.Write(b)
		crcI.Write(b)
		whole.Write(b)
		for len(b) > 0 {
			k := min(int64(len(b)), UploadPartSize-inPart)
			part.Write(b[:k])
			inPart += k
			b = b[k:]
			if inPart == UploadPartSize {
				parts = part.Sum(parts)
				part.Reset()
				inPart = 0
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", local, err)
		}
	}
	if inPart > 0 || len(parts) == 0 {
		parts = part.Sum(parts)
	}
	mismatch := func(what string) error {
		return fmt.Errorf("%s: its %s differs from %s's: the object is not this file (corrupted or overwritten)", url, what, local)
	}
	switch {
	case o.HasCRC32C:
		if o.CRC32C != crcC.Sum32() {
			return mismatch("CRC32C")
		}
	case o.CRC32 != "":
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], crcI.Sum32())
		if o.CRC32 != base64.StdEncoding.EncodeToString(b[:]) {
			return mismatch("CRC32")
		}
	case o.ETag != "":
		etag := strings.Trim(o.ETag, `"`)
		want := hex.EncodeToString(whole.Sum(nil))
		if strings.Contains(etag, "-") {
			sum := md5.Sum(parts)
			want = fmt.Sprintf("%s-%d", hex.EncodeToString(sum[:]), len(parts)/md5.Size)
		}
		if etag != want {
			return mismatch("ETag")
		}
	default:
		return fmt.Errorf("%s: the store reports no checksum of it, so its upload cannot be verified", url)
	}
	return nil
}
