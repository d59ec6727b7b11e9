// Whether this build runs under AddressSanitizer: its quarantine keeps
// freed blocks (up to 256 MB) and its redzones pad every allocation, so
// peak-memory bounds measured in-process mean something else there.
#pragma once

namespace voxprint::testing {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAddressSanitizer = true;
#else
inline constexpr bool kAddressSanitizer = false;
#endif
#else
inline constexpr bool kAddressSanitizer = false;
#endif

}  // namespace voxprint::testing
