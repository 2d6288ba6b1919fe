// Reading a struct the plugin built with its own sizeof (Sink::add): fields
// appended to the struct in a later minor of the major are missing from an
// older plugin's object and read as their defaults; the rest is copied.
#pragma once

#include <cstddef>
#include <string>
#include <tuple>
#include <type_traits>

#include "sluice/core/error.hpp"

namespace sluice {

// Specialise for a struct that gains fields within a major version:
//   appended  — member pointers of the fields added after the major's .0, in
//               declaration order;
//   last_base_field — the member pointer of the .0 struct's last field (an
//               object ending before it cannot be of this major);
//   copy_base — builds a T from the .0 fields of `item` (the only ones an
//               object of any minor is sure to hold).
// The first field a minor appends is declared alignas(std::max_align_t):
// otherwise it may sit in the tail padding of the older struct, inside the
// older sizeof, and be taken for present.
// With no appended fields (every crossing struct in ABI 2.0), only an object
// of exactly sizeof(T) is valid.
template <class T>
struct AppendedFields {
  static constexpr std::tuple<> appended{};
};

namespace detail {

template <class T, class Field>
std::size_t end_of(Field T::*member) {
  // Measured on an object of the host's own layout: well-defined, and the
  // same offsets the plugin's compiler chose (fields are only ever appended).
  static const T probe{};
  const char* base = reinterpret_cast<const char*>(&probe);
  const char* field = reinterpret_cast<const char*>(&(probe.*member));
  return static_cast<std::size_t>(field - base) + sizeof(Field);
}

template <class T, class Field>
std::size_t offset_of(Field T::*member) {
  return end_of(member) - sizeof(Field);
}

}  // namespace detail

template <class T>
inline constexpr bool kHasAppendedFields =
    std::tuple_size_v<std::remove_cvref_t<decltype(AppendedFields<T>::appended)>> != 0;

// The smallest object of T a plugin of this major may hand over.
template <class T>
std::size_t smallest_size_as_built() {
  if constexpr (kHasAppendedFields<T>)
    return detail::end_of(AppendedFields<T>::last_base_field);
  else
    return sizeof(T);
}

// `what` names the struct and its owner for the error, e.g. "plugin 'nat': a StageSpec".
template <class T>
T read_as_built(const T& item, std::size_t size_as_built, const std::string& what) {
  if (size_as_built == sizeof(T)) return item;
  std::size_t smallest = smallest_size_as_built<T>();
  if (size_as_built < smallest || size_as_built > sizeof(T))
    throw Error(what + " was built " + std::to_string(size_as_built) +
                " bytes long; this sluiced reads " +
                (smallest == sizeof(T) ? std::to_string(sizeof(T))
                                       : std::to_string(smallest) + " to " +
                                             std::to_string(sizeof(T))) +
                ": rebuild the plugin against the installed Sluice SDK");
  if constexpr (kHasAppendedFields<T>) {
    T out = AppendedFields<T>::copy_base(item);
    std::apply(
        [&](auto... member) {
          ((detail::end_of(member) <= size_as_built ? void(out.*member = item.*member)
                                                    : void()),
           ...);
        },
        AppendedFields<T>::appended);
    return out;
  } else {
    return item;  // unreachable: only sizeof(T) passes the check above
  }
}

}  // namespace sluice
