// expect: runtime_error
// An i386 system call through int 0x80 bypasses x86_64 syscall numbers; the filter kills it.
#include <cstdio>
int main() {
    long ret;
    asm volatile("int $0x80" : "=a"(ret) : "a"(20) : "memory");  // getpid on i386
    std::printf("ESCAPED: i386 syscall returned %ld\n", ret);
}
