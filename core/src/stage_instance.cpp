#include "sluice/core/stage_instance.hpp"

#include <fcntl.h>

#include <bpf/libbpf.h>

#include <cstring>
#include <memory>

#include "sluice/core/bpf_loader.hpp"
#include "sluice/core/error.hpp"

namespace sluice {

namespace {

// The section sl_next_slot lives in (sluice.h).
constexpr const char* kNextSlotSection = ".rodata.sl_next";

struct CloseObject {
  void operator()(bpf_object* object) const { bpf_object__close(object); }
};
using ObjectPtr = std::unique_ptr<bpf_object, CloseObject>;

bool is_next_slot_map(const bpf_map* map) {
  return std::strcmp(bpf_map__name(map), kNextSlotSection) == 0;
}

}  // namespace

UniqueFd load_stage_instance(const StageObject& object, const std::string& program,
                             const NextSlots& next, const std::string& what) {
  auto fail = [&](const std::string& why) -> Error {
    return Error(what + ": no instance of program '" + program + "' for its chain position (" +
                 why + ")");
  };
  if (!object.elf || object.elf_size == 0 || !object.loaded)
    throw fail("the plugin described no BPF object");
  // The same object name as the plugin's load, so that internal maps
  // (<name>.rodata, ...) get the same names and match below.
  LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = bpf_object__name(object.loaded));
  ObjectPtr instance(bpf_object__open_mem(object.elf, object.elf_size, &opts));
  if (!instance) throw fail(std::string("libbpf cannot open the ELF: ") + std::strerror(errno));

  // Same ELF, so the same maps in the same order: pair them and check.
  bool has_next_slots = false;
  const bpf_map* loaded_map = bpf_object__next_map(object.loaded, nullptr);
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, instance.get()) {
    if (!loaded_map || std::strcmp(bpf_map__name(map), bpf_map__name(loaded_map)) != 0)
      throw fail(std::string("its maps differ from the plugin's load at '") + bpf_map__name(map) +
                 "'");
    if (is_next_slot_map(map)) {
      if (bpf_map__value_size(map) != sizeof(next))
        throw fail(std::string(kNextSlotSection) + " is not sl_next_slot[SL_LANES] alone");
      if (bpf_map__set_initial_value(map, next.data(), sizeof(next)) != 0)
        throw fail(std::string("cannot set ") + kNextSlotSection);
      has_next_slots = true;
    } else {
      // Shared with the plugin's load; no pinning of its own.
      bpf_map__set_pin_path(map, nullptr);
      int fd = bpf_map__fd(loaded_map);
      if (fd < 0 || bpf_map__reuse_fd(map, fd) != 0)
        throw fail(std::string("cannot share map '") + bpf_map__name(map) + "': " +
                   std::strerror(errno));
    }
    loaded_map = bpf_object__next_map(object.loaded, loaded_map);
  }
  if (!has_next_slots)
    throw fail(std::string("the object has no ") + kNextSlotSection +
               ": built without sluice/bpf/sluice.h of SDK 2.1");

  bpf_program* wanted = nullptr;
  bpf_program* each = nullptr;
  bpf_object__for_each_program(each, instance.get()) {
    bool is_wanted = program == bpf_program__name(each);
    bpf_program__set_autoload(each, is_wanted);
    if (is_wanted) wanted = each;
  }
  if (!wanted) throw fail("the object has no such program");
  load_with_verifier_log(what, [&] { return bpf_object__load(instance.get()); });
  // The instance outlives its object: the jump map holds it.
  int fd = fcntl(bpf_program__fd(wanted), F_DUPFD_CLOEXEC, 3);
  if (fd < 0) throw fail(std::string("dup: ") + std::strerror(errno));
  return UniqueFd(fd);
}

}  // namespace sluice
