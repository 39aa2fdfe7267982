#include "hnswlib/hnswlib.h"

#include <atomic>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "shim.h"

struct hnsw_index {
  hnswlib::InnerProductSpace* space;
  hnswlib::HierarchicalNSW<float>* alg;
  int dim;
};

static void set_err(char** err, const char* what) {
  if (err) *err = strdup(what);
}

// parallel_for runs fn(0..n-1) on `threads` threads (this one among
// them), stopping at the first exception, whose message goes to err.
template <typename F>
static int parallel_for(size_t n, int threads, char** err, F fn) {
  std::atomic<size_t> next(0);
  std::atomic<bool> failed(false);
  std::string what;
  std::mutex what_mu;
  auto work = [&]() {
    for (size_t i = next++; i < n && !failed; i = next++) {
      try {
        fn(i);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(what_mu);
        what = e.what();
        failed = true;
      } catch (...) {
        std::lock_guard<std::mutex> lock(what_mu);
        what = "hnswlib: unknown error";
        failed = true;
      }
    }
  };
  std::vector<std::thread> ts;
  for (int t = 1; t < threads && (size_t)t < n; t++) ts.emplace_back(work);
  work();
  for (auto& t : ts) t.join();
  if (failed) {
    set_err(err, what.c_str());
    return 1;
  }
  return 0;
}

extern "C" {

hnsw_index* hnsw_new(int dim, size_t max_elements, int m, int ef_construction, size_t seed, char** err) {
  hnsw_index* h = nullptr;
  try {
    h = new hnsw_index{new hnswlib::InnerProductSpace(dim), nullptr, dim};
    h->alg = new hnswlib::HierarchicalNSW<float>(h->space, max_elements, m, ef_construction, seed);
    return h;
  } catch (const std::exception& e) {
    set_err(err, e.what());
  } catch (...) {
    set_err(err, "hnswlib: unknown error");
  }
  hnsw_free(h);
  return nullptr;
}

int hnsw_add(hnsw_index* h, const float* data, const int64_t* labels, size_t n, int threads, char** err) {
  return parallel_for(n, threads, err, [&](size_t i) { h->alg->addPoint(data + i * h->dim, (size_t)labels[i]); });
}

int hnsw_search(hnsw_index* h, const float* queries, size_t nq, int k, int ef, int threads, int64_t* labels, float* dists, char** err) {
  h->alg->setEf(ef);
  return parallel_for(nq, threads, err, [&](size_t q) {
    auto r = h->alg->searchKnn(queries + q * h->dim, k);
    // Worst first out of the queue: filled from the back; fewer than k
    // found leaves -1.
    for (int j = k - 1; j >= 0; j--) {
      if (r.empty()) {
        labels[q * k + j] = -1;
        dists[q * k + j] = 0;
        continue;
      }
      labels[q * k + j] = (int64_t)r.top().second;
      dists[q * k + j] = r.top().first;
      r.pop();
    }
  });
}

int hnsw_save(hnsw_index* h, const char* path, char** err) {
  try {
    h->alg->saveIndex(path);
    return 0;
  } catch (const std::exception& e) {
    set_err(err, e.what());
  } catch (...) {
    set_err(err, "hnswlib: unknown error");
  }
  return 1;
}

hnsw_index* hnsw_load(const char* path, int dim, char** err) {
  hnsw_index* h = nullptr;
  try {
    h = new hnsw_index{new hnswlib::InnerProductSpace(dim), nullptr, dim};
    h->alg = new hnswlib::HierarchicalNSW<float>(h->space, std::string(path));
    return h;
  } catch (const std::exception& e) {
    set_err(err, e.what());
  } catch (...) {
    set_err(err, "hnswlib: unknown error");
  }
  hnsw_free(h);
  return nullptr;
}

void hnsw_free(hnsw_index* h) {
  if (!h) return;
  delete h->alg;
  delete h->space;
  delete h;
}

}
