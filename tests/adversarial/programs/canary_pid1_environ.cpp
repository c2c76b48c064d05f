// expect: ok
#include <cstdio>
#include <cstring>
int main() {
    const char *paths[] = {"/proc/1/environ", "/proc/self/environ", "/proc/2/environ"};
    for (const char *p : paths) {
        FILE *f = std::fopen(p, "rb");
        if (!f) continue;
        char buf[65536];
        size_t n = std::fread(buf, 1, sizeof buf, f);
        std::fclose(f);
        for (size_t i = 0; i + 6 <= n; i++)
            if (std::memcmp(buf + i, "CANARY", 6) == 0 || std::memcmp(buf + i, "canary", 6) == 0)
                std::printf("ESCAPED: canary in %s\n", p);
    }
    std::puts("done");
}
