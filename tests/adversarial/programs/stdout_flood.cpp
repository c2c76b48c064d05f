// expect: output_limit
#include <cstdio>
int main() {
    for (;;) std::fputs("flooding flooding flooding flooding flooding flooding\n", stdout);
}
