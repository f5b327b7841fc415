/* early_main.c: prints what libearly's constructor saw (see early.c). */
#include <stdio.h>

const char *early_report(void);

int main(void)
{
    puts(early_report());
    return 0;
}
