package store

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
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
	// Only the checksum the store gave is computed (MD5 costs a core
	// about 2 ms a MB; the CRCs are hardware instructions).
	var h hash.Hash
	var parts []byte // the MD5s of UploadPartSize parts, for a multipart ETag
	multipart := false
	switch {
	case o.HasCRC32C:
		h = crc32.New(crc32.MakeTable(crc32.Castagnoli))
	case o.CRC32 != "":
		h = crc32.NewIEEE()
	case o.ETag != "":
		h = md5.New()
		multipart = strings.Contains(o.ETag, "-")
	default:
		return fmt.Errorf("%s: the store reports no checksum of it, so its upload cannot be verified", url)
	}
	if multipart {
		for {
			part := md5.New()
			n, err := io.Copy(part, io.LimitReader(f, UploadPartSize))
			if err != nil {
				return fmt.Errorf("%s: %w", local, err)
			}
			if n == 0 && len(parts) > 0 {
				break
			}
			parts = part.Sum(parts)
			if n < UploadPartSize {
				break
			}
		}
	} else if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("%s: %w", local, err)
	}
	mismatch := func(what string) error {
		return fmt.Errorf("%s: its %s differs from %s's: the object is not this file (corrupted or overwritten)", url, what, local)
	}
	switch {
	case o.HasCRC32C:
		if o.CRC32C != h.(hash.Hash32).Sum32() {
			return mismatch("CRC32C")
		}
	case o.CRC32 != "":
		if o.CRC32 != base64.StdEncoding.EncodeToString(h.Sum(nil)) {
			return mismatch("CRC32")
		}
	default:
		want := hex.EncodeToString(h.Sum(nil))
		if multipart {
			sum := md5.Sum(parts)
			want = fmt.Sprintf("%s-%d", hex.EncodeToString(sum[:]), len(parts)/md5.Size)
		}
		if strings.Trim(o.ETag, `"`) != want {
			return mismatch("ETag")
		}
	}
	return nil
}
