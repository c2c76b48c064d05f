// expect: ok
#include <arpa/inet.h>
#include <cstdio>
#include <fstream>
#include <sys/socket.h>
#include <unistd.h>
int main() {
    int port = 0;
    std::ifstream("/work/port.txt") >> port;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) { std::puts("blocked at socket()"); return 0; }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(s, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0) std::puts("ESCAPED: connected");
    else std::puts("blocked at connect()");
}
