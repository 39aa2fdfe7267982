// The C face of hnswlib for cgo: every C++ exception is caught here and
// becomes an error string (freed by the caller), never crossing into Go.
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
typedef struct hnsw_index hnsw_index;
hnsw_index* hnsw_new(int dim, size_t max_elements, int m, int ef_construction, size_t seed, char** err);
int hnsw_add(hnsw_index* h, const float* data, const int64_t* labels, size_t n, int threads, char** err);
int hnsw_search(hnsw_index* h, const float* queries, size_t nq, int k, int ef, int threads, int64_t* labels, float* dists, char** err);
int hnsw_save(hnsw_index* h, const char* path, char** err);
hnsw_index* hnsw_load(const char* path, int dim, char** err);
void hnsw_free(hnsw_index* h);
#ifdef __cplusplus
}
#endif
