/* pamconv: drive a PAM stack with a deliberately misbehaving conversation.
 *
 * usage: pamconv SERVICE USER MODE [REPLY]
 *   MODE reply      answer every prompt with REPLY
 *        null-resp  return PAM_SUCCESS with a response whose resp is NULL
 *        null-array return PAM_SUCCESS with no response array at all
 *        fail       return PAM_CONV_ERR
 * USER "-" starts PAM without a user (PAM_USER unset): the module must ask.
 * Prints "rc=N" (the pam_authenticate result) and exits 0 only on PAM_SUCCESS.
 * Used by the end-to-end tests to prove that such replies deny (pam_u2f
 * CVE-2021-31924 was a NULL reply treated as a match).
 */
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *mode, *reply;

static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data) {
    (void)data;
    if (strcmp(mode, "fail") == 0) return PAM_CONV_ERR;
    if (strcmp(mode, "null-array") == 0) { *resp = NULL; return PAM_SUCCESS; }
    struct pam_response *r = calloc((size_t)n, sizeof *r);
    if (!r) return PAM_BUF_ERR;
    for (int i = 0; i < n; i++) {
        int style = msg[i]->msg_style;
        if (style == PAM_TEXT_INFO || style == PAM_ERROR_MSG) {
            printf("msg: %s\n", msg[i]->msg);
            continue;
        }
        printf("prompt: %s\n", msg[i]->msg);
        if (strcmp(mode, "null-resp") != 0) r[i].resp = strdup(reply ? reply : "");
    }
    *resp = r;
    return PAM_SUCCESS;
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: pamconv SERVICE USER MODE [REPLY]\n"); return 2; }
    mode = argv[3];
    reply = argc > 4 ? argv[4] : NULL;
    struct pam_conv c = { conv, NULL };
    pam_handle_t *h = NULL;
    int rc = pam_start(argv[1], strcmp(argv[2], "-") == 0 ? NULL : argv[2], &c, &h);
    if (rc != PAM_SUCCESS) { printf("pam_start=%d\n", rc); return 2; }
    rc = pam_authenticate(h, 0);
    printf("rc=%d\n", rc);
    fflush(stdout);
    pam_end(h, rc);
    return rc == PAM_SUCCESS ? 0 : 1;
}
