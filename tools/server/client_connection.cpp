// One sock_diag query (SOCK_DIAG_BY_FAMILY, an exact 4-tuple) per look: the TCP state of the
// connection; ENOENT, or the listening socket (the kernel's lookup falls back to it), once the
// connection is no longer there.
#include "client_connection.h"

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace qwenvl::server {

namespace {

// Reads a numeric address as httplib writes it ("127.0.0.1", "::1", "::ffff:127.0.0.1").
int parse_address(const std::string& text, unsigned char* out) {
  if (inet_pton(AF_INET, text.c_str(), out) == 1) return AF_INET;
  if (inet_pton(AF_INET6, text.c_str(), out) == 1) return AF_INET6;
  return 0;
}

}  // namespace

ClientConnection::ClientConnection(const std::string& local_addr, int local_port, const std::string& remote_addr,
                                   int remote_port)
    : local_port_(local_port), remote_port_(remote_port) {
  family_ = parse_address(local_addr, local_);
  if (family_ == 0 || parse_address(remote_addr, remote_) != family_ || local_port <= 0 || remote_port <= 0) return;
  netlink_ = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  valid_ = netlink_ >= 0;
}

ClientConnection::~ClientConnection() {
  if (netlink_ >= 0) close(netlink_);
}

ClientConnection::State ClientConnection::ask_kernel() const {
  struct {
    nlmsghdr header;
    inet_diag_req_v2 request;
  } query{};
  query.header.nlmsg_len = sizeof(query);
  query.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  query.header.nlmsg_flags = NLM_F_REQUEST;
  query.request.sdiag_family = static_cast<__u8>(family_);
  query.request.sdiag_protocol = IPPROTO_TCP;
  query.request.idiag_states = ~0U;
  // The socket's own view: src is this end, dst the client.
  query.request.id.idiag_sport = htons(static_cast<uint16_t>(local_port_));
  query.request.id.idiag_dport = htons(static_cast<uint16_t>(remote_port_));
  const size_t bytes = family_ == AF_INET ? 4 : 16;
  std::memcpy(query.request.id.idiag_src, local_, bytes);
  std::memcpy(query.request.id.idiag_dst, remote_, bytes);
  query.request.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  query.request.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;

  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(netlink_, &query, sizeof(query), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) < 0)
    return State::kUnknown;
  alignas(nlmsghdr) char reply[8192];
  const ssize_t got = recv(netlink_, reply, sizeof(reply), 0);
  if (got < 0) return State::kUnknown;
  auto* message = reinterpret_cast<nlmsghdr*>(reply);
  int length = static_cast<int>(got);
  for (; NLMSG_OK(message, length); message = NLMSG_NEXT(message, length)) {
    if (message->nlmsg_type == NLMSG_ERROR) {
      const auto* error = static_cast<const nlmsgerr*>(NLMSG_DATA(message));
      return error->error == -ENOENT ? State::kNotFound : State::kUnknown;
    }
    if (message->nlmsg_type != SOCK_DIAG_BY_FAMILY) continue;
    const auto* diag = static_cast<const inet_diag_msg*>(NLMSG_DATA(message));
    switch (diag->idiag_state) {
      case TCP_ESTABLISHED: return State::kOpen;
      case TCP_CLOSE_WAIT:
      case TCP_LAST_ACK:
      case TCP_CLOSE: return State::kClosedByClient;
      case TCP_LISTEN: return State::kNotFound;  // no connection of these ends: the lookup fell to the listener
      default: return State::kUnknown;
    }
  }
  return State::kUnknown;
}

bool ClientConnection::connected() {
  if (!valid_) return true;
  const State state = ask_kernel();
  if (state == State::kOpen || state == State::kClosedByClient) seen_ = true;
  if (state == State::kClosedByClient) return false;
  return !(state == State::kNotFound && seen_);
}

}  // namespace qwenvl::server
