/* A compromised sandbox runner for the hostile tests, built static and run FROM scratch (no shell, no libc in
 * the image). argv[1] names the attack; the rest is what the host passes (--job /job --out /results). It answers
 * the self-test in the real runner's shape (echoing the host's nonce) unless the attack is the self-test itself,
 * and for a checks job it plants links, FIFOs and a forged results.json (prepared by the test in /plant). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char job[1 << 20];

static int slurp(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n, total = 0;
    while ((n = read(fd, buf + total, cap - 1 - total)) > 0) total += n;
    close(fd);
    buf[total] = 0;
    return (int)total;
}

static int copy(const char *from, const char *to) {
    static char buf[1 << 20];
    int n = slurp(from, buf, sizeof buf);
    if (n < 0) return -1;
    int fd = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return -1;
    write(fd, buf, n);
    close(fd);
    return 0;
}

static void selftest(const char *attack) {
    char nonce[128] = "";
    char *p = strstr(job, "\"nonce\"");
    if (p && (p = strchr(p + 7, '"')) != NULL) {
        char *e = strchr(++p, '"');
        if (e && e - p < (long)sizeof nonce) { memcpy(nonce, p, e - p); nonce[e - p] = 0; }
    }
    FILE *f = fopen("/results/results.json", "w");
    if (!f) return;
    const char *probes =
        "[{\"name\":\"network-loopback\",\"target\":\"x\",\"outcome\":\"blocked\",\"detail\":\"x\"},"
        "{\"name\":\"network-outside\",\"target\":\"x\",\"outcome\":\"blocked\",\"detail\":\"x\"},"
        "{\"name\":\"rootfs-write\",\"target\":\"x\",\"outcome\":\"blocked\",\"detail\":\"x\"},"
        "{\"name\":\"host-environment\",\"target\":\"x\",\"outcome\":\"blocked\",\"detail\":\"x\"},"
        "{\"name\":\"host-process-environ\",\"target\":\"x\",\"outcome\":\"blocked\",\"detail\":\"x\"},"
        "{\"name\":\"pids-limit\",\"target\":\"x\",\"outcome\":\"blocked\",\"detail\":\"x\"}]";
    if (strcmp(attack, "forged-selftest") == 0)
        /* A canned "everything blocked" report: no nonce, and it claims root. */
        fprintf(f, "{\"completed\":true,\"selfTest\":{\"uid\":0,\"isolated\":true,\"probes\":%s}}", probes);
    else
        fprintf(f, "{\"completed\":true,\"selfTest\":{\"nonce\":\"%s\",\"uid\":%d,\"probes\":%s}}", nonce, (int)getuid(), probes);
    fclose(f);
}

int main(int argc, char **argv) {
    if (argc < 2 || slurp("/job/job.json", job, sizeof job) < 0) return 3;
    const char *attack = argv[1];
    if (strstr(job, "\"selftest\"")) { selftest(attack); return 0; }

    mkdir("/results/evidence", 0700);
    if (strcmp(attack, "results-link") == 0) return symlink("/etc/passwd", "/results/results.json") == 0 ? 0 : 4;
    if (strcmp(attack, "results-fifo") == 0) return mkfifo("/results/results.json", 0600) == 0 ? 0 : 4;
    if (strcmp(attack, "evidence-folder-link") == 0) {
        rmdir("/results/evidence");
        symlink("/etc", "/results/evidence");
    } else if (strcmp(attack, "evidence-subfolder-link") == 0) {
        symlink("/etc", "/results/evidence/accuracy");
    } else {
        mkdir("/results/evidence/accuracy", 0700);
        if (strcmp(attack, "evidence-file-link") == 0) symlink("/etc/passwd", "/results/evidence/accuracy/passwd");
        else if (strcmp(attack, "evidence-dev-zero") == 0) symlink("/dev/zero", "/results/evidence/accuracy/zero");
        else if (strcmp(attack, "evidence-fifo") == 0) mkfifo("/results/evidence/accuracy/pipe", 0600);
    }
    return copy("/plant/results.json", "/results/results.json") == 0 ? 0 : 5;
}
