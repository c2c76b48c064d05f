// expect: memory_limit
// limits: wall_time_s=10 cpu_time_s=5  (filling memory is slow on a loaded machine)
#include <vector>
int main() {
    std::vector<char> v(1LL << 36, 1);
    return v[12345];
}
