// ClientConnection (tools/server/client_connection.h) on real loopback connections: connected while
// the client is, not once it closes (FIN) or resets (RST); and never a false "gone" where the
// kernel cannot tell (addresses it cannot read, a connection it never showed).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "client_connection.h"

namespace qwenvl::server {
namespace {

struct Ends {
  std::string addr;
  int port = 0;
};

Ends ends_of(int fd, bool peer) {
  sockaddr_in a{};
  socklen_t n = sizeof(a);
  (peer ? getpeername : getsockname)(fd, reinterpret_cast<sockaddr*>(&a), &n);
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a.sin_addr, text, sizeof(text));
  return {text, ntohs(a.sin_port)};
}

// A loopback TCP connection: the server's accepted end and the client's.
class Loopback : public ::testing::Test {
 protected:
  void SetUp() override {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    ASSERT_EQ(listen(listener_, 1), 0);
    socklen_t n = sizeof(a);
    getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &n);
    client_ = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_EQ(connect(client_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    server_ = accept(listener_, nullptr, nullptr);
    ASSERT_GE(server_, 0);
  }
  void TearDown() override {
    for (int fd : {client_, server_, listener_})
      if (fd >= 0) close(fd);
  }
  ClientConnection watch() const {
    const Ends local = ends_of(server_, false), remote = ends_of(server_, true);
    return ClientConnection(local.addr, local.port, remote.addr, remote.port);
  }
  // Whether `c` says the client is gone within a second.
  static bool noticed_gone(ClientConnection& c) {
    for (int i = 0; i < 100; ++i) {
      if (!c.connected()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  int listener_ = -1, client_ = -1, server_ = -1;
};

TEST_F(Loopback, ConnectedUntilTheClientCloses) {
  ClientConnection c = watch();
  EXPECT_TRUE(c.connected());
  EXPECT_TRUE(c.connected());
  close(client_);
  client_ = -1;
  EXPECT_TRUE(noticed_gone(c));
}

TEST_F(Loopback, AResetClientIsGoneToo) {
  ClientConnection c = watch();
  EXPECT_TRUE(c.connected());
  const linger abort_on_close{1, 0};
  setsockopt(client_, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof(abort_on_close));
  close(client_);
  client_ = -1;
  EXPECT_TRUE(noticed_gone(c));
}

TEST(ClientConnection, WhereTheKernelCannotTellTheClientCountsAsThere) {
  ClientConnection unreadable("not an address", 80, "127.0.0.1", 5000);
  EXPECT_TRUE(unreadable.connected());
  ClientConnection mixed("127.0.0.1", 80, "::1", 5000);
  EXPECT_TRUE(mixed.connected());
  ClientConnection never_seen("127.0.0.1", 1, "127.0.0.1", 2);  // no such connection, ever
  EXPECT_TRUE(never_seen.connected());
  EXPECT_TRUE(never_seen.connected());
}

}  // namespace
}  // namespace qwenvl::server
