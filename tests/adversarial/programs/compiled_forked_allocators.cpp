// expect: memory_limit, ok
// limits: wall_time_s=10 cpu_time_s=5  (filling memory is slow on a loaded machine)
// A compiled program's run under the compiler's memory: four children of 150 MiB each, alive at
// once, fit the compile step's 2 GiB but not the run's own limit (with cgroups a memory verdict,
// which test_adversarial checks; with rlimits alone nothing caps their sum).
#include <sys/wait.h>
#include <unistd.h>
int main() {
    for (int i = 0; i < 4; i++) {
        if (fork() == 0) {
            size_t size = 150u << 20;
            volatile char *p = new char[size];  // volatile: the allocation may not be optimised away
            for (size_t at = 0; at < size; at += 4096) p[at] = 1;
            sleep(2);
            _exit(p[size - 4096] == 1 ? 0 : 1);
        }
    }
    int status, failed = 0;
    while (wait(&status) > 0)
        failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    return failed;
}
