// The smallest dog app built against an installed dog: GET / answers from a Replica, so the
// installed runtime (Group → identify → Replica) is exercised, not only the front door.
#include <dog/dog.h>

#include <string>

struct Room : dog::Group {
  dog::Namespace& link(dog::Env& env) override { return env["HELLO"]; }
};

struct Hello : dog::Replica {
  dog::Namespace& link(dog::Env& env) override { return env["ROOM"]; }
  dog::Task<dog::Response> receive(dog::Request& req) override {
    co_return dog::Response::text(200, "hello from an installed dog\n");
  }
};

int main(int argc, char** argv) {
  dog::App app;
  app.group<Room>("ROOM");
  app.replica<Hello>("HELLO");
  app.fetch([](dog::Request& req, dog::Env& env) -> dog::Task<dog::Response> {
    auto room = env["ROOM"].id_from_name("lobby");
    auto hello = co_await dog::identify(room, std::string("visitor"), {env["ROOM"], env["HELLO"]});
    co_return co_await hello.fetch(req);
  });
  return app.run(argc, argv);
}
