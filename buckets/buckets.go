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
	"errors"

	"cloud.google.com/go/storage"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/gcs"
	_ "github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem/s3"
	"github.com/aws/smithy-go"

	"github.com/infomax/infomax/internal/store"
)

func init() { store.Enable(notFound) }

// notFound is a store's "no such object": the GCS client's
// ErrObjectNotExist, an S3 API error NotFound (HEAD) or NoSuchKey.
func notFound(err error) bool {
	var api smithy.APIError
	return errors.Is(err, storage.ErrObjectNotExist) || errors.As(err, &api) && (api.ErrorCode() == "NotFound" || api.ErrorCode() == "NoSuchKey")
}
