// expect: time_limit, ok, runtime_error
#include <unistd.h>
int main() {
    for (;;) fork();
}
