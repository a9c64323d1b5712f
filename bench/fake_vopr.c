/* A fast native fake simulator for bench/bench_runner.py: speaks vopr-json (sorted keys, compact,
   +00:00 nanosecond timestamps) and burns a fixed amount of CPU per seed, like a real simulation.
   Usage: fake_vopr --json --seed N -n K [--work ROUNDS] [--fail-at SEED] [--fail-invariant NAME] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void stamp(char *out, size_t len) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, len - n, ".%09ld+00:00", ts.tv_nsec);
}

int main(int argc, char **argv) {
    uint64_t seed = 0, count = 100, work = 2000, fail_at = UINT64_MAX;
    const char *invariant = "replica_consistency";
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "--seed") || !strcmp(argv[i], "-s")) && i + 1 < argc) seed = strtoull(argv[++i], 0, 10);
        else if ((!strcmp(argv[i], "-n") || !strcmp(argv[i], "--iterations")) && i + 1 < argc) count = strtoull(argv[++i], 0, 10);
        else if (!strcmp(argv[i], "--work") && i + 1 < argc) work = strtoull(argv[++i], 0, 10);
        else if (!strcmp(argv[i], "--fail-at") && i + 1 < argc) fail_at = strtoull(argv[++i], 0, 10);
        else if (!strcmp(argv[i], "--fail-invariant") && i + 1 < argc) invariant = argv[++i];
    }
    static char buf[1 << 16];
    setvbuf(stdout, buf, _IOFBF, sizeof buf);
    char ts[64];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    stamp(ts, sizeof ts);
    printf("{\"data\":{\"checkpoint_loaded\":false,\"iterations\":%llu,\"network_faults\":true,\"starting_seed\":%llu,"
           "\"storage_faults\":true},\"timestamp\":\"%s\",\"type\":\"start\"}\n", (unsigned long long)count,
           (unsigned long long)seed, ts);
    uint64_t failures = 0;
    for (uint64_t s = seed; s < seed + count; s++) {
        uint64_t x = s * 0x9E3779B97F4A7C15ull + 1;
        for (uint64_t r = 0; r < work; r++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; }
        stamp(ts, sizeof ts);
        if (s == fail_at) {
            failures++;
            printf("{\"data\":{\"events\":%llu,\"invariant\":\"%s\",\"message\":\"Replica divergence at time %llu\","
                   "\"seed\":%llu,\"status\":\"failed\"},\"timestamp\":\"%s\",\"type\":\"iteration\"}\n",
                   (unsigned long long)(x % 100 + 1), invariant, (unsigned long long)(x % 100000000),
                   (unsigned long long)s, ts);
            fflush(stdout);
        } else {
            printf("{\"data\":{\"events\":%llu,\"seed\":%llu,\"simulated_time_ms\":%llu.%03llu,\"status\":\"ok\"},"
                   "\"timestamp\":\"%s\",\"type\":\"iteration\"}\n", (unsigned long long)(x % 100 + 1),
                   (unsigned long long)s, (unsigned long long)(x % 500), (unsigned long long)(x % 1000), ts);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    stamp(ts, sizeof ts);
    printf("{\"data\":{\"elapsed_secs\":%.6f,\"failed_seeds\":[", secs);
    if (failures) printf("%llu", (unsigned long long)fail_at);
    printf("],\"failures\":%llu,\"rate\":%.2f,\"successes\":%llu},\"timestamp\":\"%s\",\"type\":\"batch_complete\"}\n",
           (unsigned long long)failures, secs > 0 ? count / secs : 0.0, (unsigned long long)(count - failures), ts);
    fflush(stdout);
    return failures ? 1 : 0;
}
