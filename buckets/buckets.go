// Package buckets links S3 and GCS paths into a program (import it for its side effect).
//
// Package buckets links object storage into a program: s3:// and gs://
// paths for every reader and writer of the project (data, runs' features,
// indexes, reports), through Apache Beam's S3 and GCS filesystems. Import it
// for its side effect:
//
//	import _ "github.com/infomax/infomax/buckets"
//
// The runner and embed commands do. A library user who reads only local
// files leaves it out and does not link the AWS and Google Cloud SDKs; a
// URL in such a program gets an error that names this package.
//
// Credentials, endpoints and regions come from each store's standard
// sources: for S3 the AWS SDK's (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_REGION, AWS_ENDPOINT_URL_S3, ~/.aws/config and credentials); for GCS
// Google's application default credentials (GOOGLE_APPLICATION_CREDENTIALS,
// gcloud's login) and STORAGE_EMULATOR_HOST.
package buckets

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"cloud.google.com/go/storage"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/gcs"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/s3"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/infomax/infomax/internal/store"
)

func init() { store.Enable(notFound, stat) }

// stat asks the store for an object's size and checksums: S3's HeadObject
// (with its checksums asked for), GCS's object attributes. The clients come
// from the same standard configuration as Beam's filesystems.
func stat(ctx context.Context, url string) (store.Object, error) {
	scheme, rest, _ := strings.Cut(url, "://")
	bucket, key, _ := strings.Cut(rest, "/")
	switch scheme {
	case "s3":
		cfg, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return store.Object{}, fmt.Errorf("loading the AWS configuration: %w", err)
		}
		h, err := s3.NewFromConfig(cfg).HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
		if err != nil {
			return store.Object{}, err
		}
		o := store.Object{Size: aws.ToInt64(h.ContentLength), ETag: aws.ToString(h.ETag)}
		if h.ChecksumType == types.ChecksumTypeFullObject {
			o.CRC32 = aws.ToString(h.ChecksumCRC32)
		}
		return o, nil
	case "gs":
		c, err := storage.NewClient(ctx)
		if err != nil {
			return store.Object{}, err
		}
		defer c.Close()
		a, err := c.Bucket(bucket).Object(key).Attrs(ctx)
		if err != nil {
			return store.Object{}, err
		}
		return store.Object{Size: a.Size, CRC32C: a.CRC32C, HasCRC32C: true}, nil
	}
	return store.Object{}, fmt.Errorf("no store for %s://", scheme)
}

// notFound is a store's "no such object": the GCS client's
// ErrObjectNotExist, an S3 API error NotFound (HEAD) or NoSuchKey.
func notFound(err error) bool {
	var api smithy.APIError
	return errors.Is(err, storage.ErrObjectNotExist) || errors.As(err, &api) && (api.ErrorCode() == "NotFound" || api.ErrorCode() == "NoSuchKey")
}
