// expect: ok
#include <cstdio>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>
int main() {
    long pid = syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) _exit(0);
    if (pid > 0) std::puts("ESCAPED: clone with CLONE_NEWUSER");
    if (unshare(CLONE_NEWUSER) == 0) std::puts("ESCAPED: unshare");
    std::puts("done");
}
