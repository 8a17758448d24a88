/* pamrace: N threads, each with its own PAM handle, authenticate at once
 * (released together by a barrier) with the same reply.
 *
 * usage: pamrace SERVICE[,SERVICE…] USER[,USER…] N REPLY
 * With several services, thread i uses service i mod k (fleet tests: one
 * service per server, each with its own config and daemon); with several
 * users, user i mod k (many accounts logging in at once: one process,
 * because pam_wrapper can hold only 62 processes' configurations at once).
 * Prints "success=S failure=F" and exits 0. One process keeps pam_wrapper
 * to a single configuration directory, so all N calls reach the module.
 */
#include <pthread.h>
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *reply;
static char *services[64];
static int nservices;
static char *users[1024];
static int nusers;
static pthread_barrier_t start;
static int successes, failures;
static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;

static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data) {
    (void)data;
    struct pam_response *r = calloc((size_t)n, sizeof *r);
    if (!r) return PAM_BUF_ERR;
    for (int i = 0; i < n; i++)
        if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF || msg[i]->msg_style == PAM_PROMPT_ECHO_ON)
            r[i].resp = strdup(reply);
    *resp = r;
    return PAM_SUCCESS;
}

static void *attempt(void *arg) {
    const char *service = services[(int)(long)arg % nservices];
    const char *user = users[(int)(long)arg % nusers];
    struct pam_conv c = { conv, NULL };
    pam_handle_t *h = NULL;
    int rc = pam_start(service, user, &c, &h);
    pthread_barrier_wait(&start);
    if (rc == PAM_SUCCESS) rc = pam_authenticate(h, 0);
    if (h) pam_end(h, rc);
    pthread_mutex_lock(&count_lock);
    if (rc == PAM_SUCCESS) successes++; else failures++;
    pthread_mutex_unlock(&count_lock);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: pamrace SERVICE USER N REPLY\n"); return 2; }
    reply = argv[4];
    for (char *s = strtok(argv[1], ","); s && nservices < 64; s = strtok(NULL, ","))
        services[nservices++] = s;
    for (char *s = strtok(argv[2], ","); s && nusers < 1024; s = strtok(NULL, ","))
        users[nusers++] = s;
    if (nservices == 0 || nusers == 0) return 2;
    int n = atoi(argv[3]);
    if (n < 1 || n > 1024) return 2;
    pthread_t *t = calloc((size_t)n, sizeof *t);
    pthread_barrier_init(&start, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) pthread_create(&t[i], NULL, attempt, (void *)(long)i);
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    printf("success=%d failure=%d\n", successes, failures);
    return 0;
}
