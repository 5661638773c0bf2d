// The data-parallel step's meeting points (step_thread in step.c): a barrier, the sum of a
// per-thread vector over the threads, and the threads' gradients summed for Adam. Every sum runs
// in thread order 0..T-1, so a given thread count gives the same bits on every run, and every
// thread reads the same sums. The words of the Control block are shared between the threads'
// instances of this module (one shared WebAssembly memory): atomics where they race.

#include "ops.h"
#include "vector.h"

// Checks of the barrier word before sleeping on it: a barrier opens within microseconds when
// the threads' shares are even, and a wake-up from memory.atomic.wait costs tens.
#define SPINS 4096

// A generation barrier: the last thread to arrive resets the count and opens the barrier by
// bumping the generation; the others wait for the bump. A thread that finds Control.abort set
// (the host sets it, and wakes them, when a thread failed) traps rather than wait for a thread
// that will not come. So does one that has waited Control.patience seconds with no other thread
// arriving: a worker whose isolate died without reaching its catch (the host's event loop is
// blocked here and cannot hear of it) would otherwise hold the run until the CI job's timeout.
// The threads' shares are even, so a healthy barrier opens within milliseconds.
void teamBarrier(Control *c) {
  const u32 generation = __atomic_load_n(&c->generation, __ATOMIC_SEQ_CST);
  if (__atomic_add_fetch(&c->arrived, 1, __ATOMIC_SEQ_CST) == c->threads) {
    __atomic_store_n(&c->arrived, 0, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&c->generation, 1, __ATOMIC_SEQ_CST);
    __builtin_wasm_memory_atomic_notify((int *)&c->generation, 0xffffffffU);
    return;
  }
  u32 arrived = __atomic_load_n(&c->arrived, __ATOMIC_SEQ_CST), idle = 0;
  for (u32 spin = 0; __atomic_load_n(&c->generation, __ATOMIC_SEQ_CST) == generation; spin++) {
    if (__atomic_load_n(&c->abort, __ATOMIC_SEQ_CST)) __builtin_trap();
    if (spin < SPINS) continue;
    // 2: timed out after a second.
    if (__builtin_wasm_memory_atomic_wait32((int *)&c->generation, (int)generation, 1000000000LL) != 2) continue;
    const u32 now = __atomic_load_n(&c->arrived, __ATOMIC_SEQ_CST);
    idle = now == arrived ? idle + 1 : 0;
    arrived = now;
    if (idle >= c->patience) {
      // 2 tells the host why (kernel-threads.ts), and has any other waiting thread trap too.
      __atomic_store_n(&c->abort, 2, __ATOMIC_SEQ_CST);
      __builtin_wasm_memory_atomic_notify((int *)&c->generation, 0xffffffffU);
      __builtin_trap();
    }
  }
}

// Each thread writes its values into its row of one half of Control.partials, waits for the
// others, and sums the column over threads 0..T-1. The halves alternate: a thread can only write
// the next sum's half once every thread has passed the next barrier, so after they all read
// this one.
void teamSum(Team *team, float *values, u32 n) {
  Control *c = team->control;
  const u32 T = c->threads;
  float *half = c->partials + (team->reductions++ & 1) * T * c->stride;
  copy(half + team->thread * c->stride, values, n);
  teamBarrier(c);
  copy(values, half, n);
  for (u32 t = 1; t < T; t++) addSpan(values, half + t * c->stride, n);
}

// After the last backward pass (a barrier): thread t sums every thread's gradients over its slice
// of the trainable weights, in thread order, into thread 0's buffer, and runs Adam there. Slices
// start on 4-float boundaries.
void teamAdam(const Net *s, Team *team) {
  Control *c = team->control;
  const u32 T = c->threads, n = s->trainable;
  const u32 slice = ((n + T - 1) / T + 3) & ~3U;
  const u32 from = team->thread * slice < n ? team->thread * slice : n;
  const u32 to = n - from < slice ? n : from + slice;
  float *sum = c->grads[0];
  for (u32 t = 1; t < T; t++) addSpan(sum + from, c->grads[t] + from, to - from);
  Net summed = *s;
  summed.grads = sum;
  adamSpan(&summed, from, to, c->rate, c->epsilon, c->beta1, c->beta2);
}
