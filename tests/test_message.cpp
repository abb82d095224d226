// message: moved vs shared payloads, inline storage, typed access.
#include <kamaelia/core/message.hpp>

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

using kamaelia::message;
using kamaelia::shared;

namespace {
struct counted {
    static inline int live = 0;
    static inline int copies = 0;
    std::vector<int> data;
    counted() : data(100, 7) { ++live; }
    counted(const counted& o) : data(o.data) {
        ++live;
        ++copies;
    }
    counted(counted&& o) noexcept : data(std::move(o.data)) { ++live; }
    ~counted() { --live; }
};
} // namespace

TEST_CASE("message holds small values inline and takes them back", "[message]") {
    message m(42);
    REQUIRE(m.holds<int>());
    REQUIRE_FALSE(m.holds<long>());
    REQUIRE(*m.peek<int>() == 42);
    REQUIRE(m.take<int>() == 42);
    REQUIRE(m.empty());
}

TEST_CASE("message moves strings without copying their buffer", "[message]") {
    std::string s(1000, 'x');
    const char* data = s.data();
    message m(std::move(s));
    message m2(std::move(m));
    REQUIRE(m.empty());
    std::string out = m2.take<std::string>();
    REQUIRE(out.data() == data);
}

TEST_CASE("message with a large value boxes it and destroys it once", "[message]") {
    counted::live = 0;
    {
        message m(counted{});
        REQUIRE(counted::live == 1);
        message m2(std::move(m));
        REQUIRE(counted::live == 1);
    }
    REQUIRE(counted::live == 0);
}

TEST_CASE("recv of the wrong type is a clear error and keeps the message", "[message]") {
    message m(std::string("hello"));
    REQUIRE_THROWS_AS(m.take<int>(), kamaelia::type_mismatch);
    try {
        (void)m.take<int>();
    } catch (const kamaelia::type_mismatch& e) {
        std::string what = e.what();
        REQUIRE(what.find("int") != std::string::npos);
        REQUIRE(what.find("string") != std::string::npos);
    }
    REQUIRE(m.take<std::string>() == "hello");
}

TEST_CASE("share() fans one payload out without copying", "[message]") {
    counted::live = 0;
    counted::copies = 0;
    message a(counted{});
    message b = a.share();
    message c = b.share();
    REQUIRE(a.is_shared());
    REQUIRE(counted::live == 1);
    REQUIRE(a.peek<counted>() == c.peek<counted>());
    shared<counted> sa = a.take_shared<counted>();
    REQUIRE(sa.use_count() == 3);
    // Taking a value out of a payload with other owners copies it...
    counted vb = b.take<counted>();
    REQUIRE(counted::copies == 1);
    // ...but the last owner moves it out.
    sa = shared<counted>();
    counted vc = c.take<counted>();
    REQUIRE(counted::copies == 1);
    (void)vb;
    (void)vc;
}

TEST_CASE("a shared<T> sent as a message is received as T or as shared<T>", "[message]") {
    auto s = kamaelia::make_shared_message(std::string("payload"));
    message m(s);
    REQUIRE(m.holds<std::string>());
    REQUIRE(s.use_count() == 2);
    shared<std::string> back = m.take_shared<std::string>();
    REQUIRE(back.get() == s.get());
}

TEST_CASE("detach() gives a crossing message its own payload", "[message]") {
    message a(std::string("x"));
    message b = a.share();
    const std::string* before = b.peek<std::string>();
    b.detach();
    REQUIRE(b.peek<std::string>() != before);
    REQUIRE(*b.peek<std::string>() == "x");
    a.detach(); // now the only owner: nothing to copy
    REQUIRE(*a.peek<std::string>() == "x");
}

TEST_CASE("a non-copyable shared payload with other owners cannot be taken by value", "[message]") {
    message a(std::make_unique<int>(5));
    message b = a.share();
    REQUIRE_THROWS_AS(b.take<std::unique_ptr<int>>(), kamaelia::error);
    a.reset();
    REQUIRE(*b.take<std::unique_ptr<int>>() == 5);
}
