// Whether the client of a request is still there while its handler waits for the engine.
// cpp-httplib 0.11 (Debian 12) gives a handler no socket and no is_connection_closed(), but the
// request names both ends of its TCP connection; the kernel is asked about that connection by them
// (sock_diag(7), what ss(8) uses). A connection whose client has closed its end (CLOSE_WAIT and on),
// or that has gone from the kernel's tables since it was seen (reset), is a client gone.
#pragma once

#include <string>

namespace qwenvl::server {

class ClientConnection {
 public:
  // The request's own addresses: httplib::Request's local_addr/local_port and remote_addr/remote_port.
  ClientConnection(const std::string& local_addr, int local_port, const std::string& remote_addr, int remote_port);
  ~ClientConnection();
  ClientConnection(const ClientConnection&) = delete;
  ClientConnection& operator=(const ClientConnection&) = delete;

  // False once the client has hung up. True while it is connected, and whenever the kernel cannot
  // tell (no sock_diag here, addresses it cannot read, a connection never seen): never a false "gone".
  bool connected();

 private:
  enum class State { kOpen, kClosedByClient, kNotFound, kUnknown };
  State ask_kernel() const;

  int netlink_ = -1;
  bool valid_ = false;  // addresses parsed and a netlink socket open
  bool seen_ = false;   // the kernel has shown the connection once
  int family_ = 0;
  unsigned char local_[16] = {}, remote_[16] = {};
  int local_port_ = 0, remote_port_ = 0;
};

}  // namespace qwenvl::server
