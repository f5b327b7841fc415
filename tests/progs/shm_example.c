/* shm_example.c: a parent and four forked workers share one heap. */
#include <fastmem.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

struct msg {
    struct msg *next;
    char text[32];
};

int main(void)
{
    if (shm_init(64 << 20) != 0) { /* 64 MiB, and never more */
        perror("shm_init");
        return 1;
    }
    /* Made before fork, so every worker sees it at the same address. */
    struct msg **inbox = shm_calloc(4, sizeof *inbox);
    for (int w = 0; w < 4; w++) {
        if (fork() == 0) {
            for (int i = 0; i < 1000; i++) {
                struct msg *m = shm_malloc(sizeof *m);
                if (m == NULL)
                    _exit(1);
                snprintf(m->text, sizeof m->text, "worker %d, message %d", w, i);
                m->next = inbox[w];
                inbox[w] = m;
            }
            _exit(0);
        }
    }
    while (wait(NULL) > 0)
        ;
    int n = 0;
    for (int w = 0; w < 4; w++) {
        for (struct msg *m = inbox[w], *next; m != NULL; m = next) {
            next = m->next;
            n++;
            shm_free(m);
        }
    }
    shm_free(inbox);
    struct fastmem_stats st;
    shm_stats_get(&st, sizeof st);
    printf("read %d messages; %llu blocks left\n", n, (unsigned long long)st.live_blocks);
    shm_destroy();
    return 0;
}
