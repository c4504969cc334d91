// Awaiting KJ promises from dog's coroutines.
//
// dog's coroutine type is asio::awaitable<T> (see docs/architecture.md, "Coroutines"). Cap'n
// Proto and kj-http speak kj::Promise; `co_await dog::node::await_kj(loop, promise)` bridges one
// into the other on the same Loop thread.
//
// Contract: the promise must belong to this loop. The coroutine resumes from a fresh Asio
// handler, never from inside a KJ callback, so it may freely start more KJ or Asio work. A
// rejected promise rethrows as dog::node::KjError carrying the kj::Exception type, so callers
// can react by kind (FAILED, OVERLOADED, DISCONNECTED, UNIMPLEMENTED).
#pragma once

#include <asio/async_result.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <exception>
#include <memory>
#include <optional>
#include <variant>
#include <stdexcept>
#include <string>

#include <kj/async.h>
#include <kj/exception.h>

#include "node/loop.h"

namespace dog::node {

class KjError : public std::runtime_error {
 public:
  explicit KjError(const kj::Exception& e)
      : std::runtime_error(e.getDescription().cStr()), type_(e.getType()) {}
  kj::Exception::Type type() const { return type_; }

 private:
  kj::Exception::Type type_;
};

namespace detail {
template <typename T>
struct KjResult {
  using type = std::optional<T>;  // T may lack a default constructor (kj::Own, capnp responses)
};
template <>
struct KjResult<void> {
  using type = std::monostate;
};
}  // namespace detail

template <typename T>
asio::awaitable<T> await_kj(Loop& loop, kj::Promise<T> promise) {
  using R = typename detail::KjResult<T>::type;
  auto ex = loop.io().get_executor();
  auto result = co_await asio::async_initiate<const asio::use_awaitable_t<>&,
                                              void(std::exception_ptr, R)>(
      [&promise, ex](auto handler) mutable {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        auto done = [h, ex](std::exception_ptr e, R value) mutable {
          asio::post(ex, [h, e, value = std::move(value)]() mutable {
            (*h)(e, std::move(value));
          });
        };
        if constexpr (std::is_void_v<T>) {
          kj::mv(promise)
              .then([done]() mutable { done(nullptr, R{}); },
                    [done](kj::Exception&& e) mutable {
                      done(std::make_exception_ptr(KjError(e)), R{});
                    })
              .detach([](kj::Exception&&) {});
        } else {
          kj::mv(promise)
              .then([done](T v) mutable { done(nullptr, std::move(v)); },
                    [done](kj::Exception&& e) mutable {
                      done(std::make_exception_ptr(KjError(e)), R{});
                    })
              .detach([](kj::Exception&&) {});
        }
      },
      asio::use_awaitable);
  if constexpr (!std::is_void_v<T>) co_return std::move(*result);
}

}  // namespace dog::node
