// expect: memory_limit
// limits: wall_time_s=10 cpu_time_s=5  (filling memory is slow on a loaded machine)
#include <cstdlib>
#include <cstring>
#include <new>
int main() {
    for (;;) {
        char *p = static_cast<char *>(std::malloc(16 << 20));
        if (!p) throw std::bad_alloc();
        std::memset(p, 1, 16 << 20);
    }
}
