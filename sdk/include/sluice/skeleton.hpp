// Ownership of a bpftool skeleton (<name>.skel.h): the object is destroyed
// (programs, links and map fds closed) when the owner goes, on every path.
//
//   sluice::Skeleton<my_bpf, my_bpf__destroy> skel(my_bpf__open_opts(&opts));
//   if (!skel) throw ...;
//   host.load_bpf("my stage", [&] { return my_bpf__load(skel.get()); });
//
// Within one source file only: the generated <name>__destroy is static, so
// the type differs in every file; a header shared by several files declares
// a deleter struct instead.
#pragma once

#include <memory>

namespace sluice {

// The deleter: calls the skeleton's generated <name>__destroy.
template <auto Destroy>
struct DestroySkeleton {
  template <class T>
  void operator()(T* skeleton) const {
    Destroy(skeleton);
  }
};

template <class T, void (*Destroy)(T*)>
using Skeleton = std::unique_ptr<T, DestroySkeleton<Destroy>>;

}  // namespace sluice
