/* SPDX-License-Identifier: MIT */
/* Incremental UTF-8 validator: a byte-class table feeding a small DFA whose
 * states count the continuation bytes still expected, with four special
 * states for the lead bytes whose first continuation range is narrowed
 * (E0, ED, F0, F4) to exclude overlongs, surrogates and > U+10FFFF. */
#include "hf/utf8.h"

#include <string.h>

/* DFA states. ACCEPT and REJECT are fixed by the public header. */
enum {
  S_ACCEPT = HF_UTF8_ACCEPT, /* at a code point boundary */
  S_REJECT = HF_UTF8_REJECT, /* invalid, sticky */
  S_NEED1,                   /* one more continuation 80..BF */
  S_NEED2,                   /* two more, the first 80..BF */
  S_NEED3,                   /* three more, the first 80..BF */
  S_E0,                      /* after E0: A0..BF (no overlong 3-byte) */
  S_ED,                      /* after ED: 80..9F (no UTF-16 surrogates) */
  S_F0,                      /* after F0: 90..BF (no overlong 4-byte) */
  S_F4,                      /* after F4: 80..8F (nothing above U+10FFFF) */
  S_COUNT
};

/* Byte classes: every byte value maps to one of these, so the transition
 * table only needs S_COUNT x C_COUNT entries. */
enum {
  C_ASCII, /* 00..7F */
  C_CONT0, /* 80..8F continuation, low quarter */
  C_CONT1, /* 90..9F continuation */
  C_CONT2, /* A0..BF continuation, upper half */
  C_BAD,   /* C0, C1 (always overlong), F5..FF (beyond U+10FFFF) */
  C_L2,    /* C2..DF: 2-byte lead */
  C_E0,    /* E0 */
  C_L3,    /* E1..EC, EE..EF: 3-byte lead, any continuation */
  C_ED,    /* ED */
  C_F0,    /* F0 */
  C_L4,    /* F1..F3: 4-byte lead, any continuation */
  C_F4,    /* F4 */
  C_COUNT
};

#define A C_ASCII
static const uint8_t byte_class[256] = {
    /* 00..7F */
    A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A,
    A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A,
    A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A,
    A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A,
    A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A,
    A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A,
    A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A,
    A, A, A, A, A, A, A, A, A, A, A, A, A, A, A, A,
    /* 80..8F */
    C_CONT0, C_CONT0, C_CONT0, C_CONT0, C_CONT0, C_CONT0, C_CONT0, C_CONT0,
    C_CONT0, C_CONT0, C_CONT0, C_CONT0, C_CONT0, C_CONT0, C_CONT0, C_CONT0,
    /* 90..9F */
    C_CONT1, C_CONT1, C_CONT1, C_CONT1, C_CONT1, C_CONT1, C_CONT1, C_CONT1,
    C_CONT1, C_CONT1, C_CONT1, C_CONT1, C_CONT1, C_CONT1, C_CONT1, C_CONT1,
    /* A0..BF */
    C_CONT2, C_CONT2, C_CONT2, C_CONT2, C_CONT2, C_CONT2, C_CONT2, C_CONT2,
    C_CONT2, C_CONT2, C_CONT2, C_CONT2, C_CONT2, C_CONT2, C_CONT2, C_CONT2,
    C_CONT2, C_CONT2, C_CONT2, C_CONT2, C_CONT2, C_CONT2, C_CONT2, C_CONT2,
    C_CONT2, C_CONT2, C_CONT2, C_CONT2, C_CONT2, C_CONT2, C_CONT2, C_CONT2,
    /* C0..C1, C2..DF */
    C_BAD, C_BAD, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2,
    C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2,
    C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2,
    C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2, C_L2,
    /* E0..EF */
    C_E0, C_L3, C_L3, C_L3, C_L3, C_L3, C_L3, C_L3,
    C_L3, C_L3, C_L3, C_L3, C_L3, C_ED, C_L3, C_L3,
    /* F0..FF */
    C_F0, C_L4, C_L4, C_L4, C_F4, C_BAD, C_BAD, C_BAD,
    C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD, C_BAD,
};
#undef A

#define R S_REJECT
static const uint8_t transition[S_COUNT][C_COUNT] = {
    /*            ASCII     80-8F    90-9F    A0-BF    bad  C2-DF    E0    E1-EF  ED    F0    F1-F3    F4 */
    [S_ACCEPT] = {S_ACCEPT, R,       R,       R,       R, S_NEED1, S_E0, S_NEED2, S_ED, S_F0, S_NEED3, S_F4},
    [S_REJECT] = {R,        R,       R,       R,       R, R,       R,    R,       R,    R,    R,       R},
    [S_NEED1]  = {R,        S_ACCEPT, S_ACCEPT, S_ACCEPT, R, R,    R,    R,       R,    R,    R,       R},
    [S_NEED2]  = {R,        S_NEED1, S_NEED1, S_NEED1, R, R,       R,    R,       R,    R,    R,       R},
    [S_NEED3]  = {R,        S_NEED2, S_NEED2, S_NEED2, R, R,       R,    R,       R,    R,    R,       R},
    [S_E0]     = {R,        R,       R,       S_NEED1, R, R,       R,    R,       R,    R,    R,       R},
    [S_ED]     = {R,        S_NEED1, S_NEED1, R,       R, R,       R,    R,       R,    R,    R,       R},
    [S_F0]     = {R,        R,       S_NEED2, S_NEED2, R, R,       R,    R,       R,    R,    R,       R},
    [S_F4]     = {R,        S_NEED2, R,       R,       R, R,       R,    R,       R,    R,    R,       R},
};
#undef R

#define HIGH_BITS 0x8080808080808080ull

hf_utf8_state hf_utf8_feed(hf_utf8_state st, const uint8_t *p, size_t len,
                           size_t *err_off) {
  size_t i = 0;

  /* An already-rejected (or corrupted) state stays rejected; there is no
   * offending byte in this input, so report offset 0. */
  if (st >= S_COUNT || st == S_REJECT) {
    if (err_off)
      *err_off = 0;
    return HF_UTF8_REJECT;
  }
  while (i < len) {
    if (st == S_ACCEPT) {
      /* Text is mostly ASCII: at a boundary, skip whole 32-byte blocks,
       * then 8-byte words, with no high bit set. memcpy keeps the
       * unaligned loads well-defined. */
      while (len - i >= 32) {
        uint64_t w[4];
        memcpy(w, p + i, sizeof w);
        if ((w[0] | w[1] | w[2] | w[3]) & HIGH_BITS)
          break;
        i += 32;
      }
      while (len - i >= 8) {
        uint64_t w;
        memcpy(&w, p + i, sizeof w);
        if (w & HIGH_BITS)
          break;
        i += 8;
      }
      if (i == len)
        break;
    }
    st = transition[st][byte_class[p[i]]];
    if (st == S_REJECT) {
      if (err_off)
        *err_off = i;
      return HF_UTF8_REJECT;
    }
    i++;
  }
  return st;
}

int hf_utf8_valid(const uint8_t *p, size_t len) {
  return hf_utf8_feed(HF_UTF8_ACCEPT, p, len, NULL) == HF_UTF8_ACCEPT;
}
