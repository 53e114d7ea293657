/* SPDX-License-Identifier: MIT */
/* Error-code names and messages, generated from the HF_ERRNO_MAP X-macro in
 * hf/err.h so the enum, the text and the names can never drift apart. */
#include "hf/err.h"

const char *hf_strerror(int err) {
  switch (err) {
#define HF__ERR_TEXT(name, num, text)                                          \
  case -(num):                                                                 \
    return text;
    HF_ERRNO_MAP(HF__ERR_TEXT)
#undef HF__ERR_TEXT
  case 0:
    return "success";
  default:
    return "unknown error";
  }
}

const char *hf_err_name(int err) {
  switch (err) {
#define HF__ERR_NAME(name, num, text)                                          \
  case -(num):                                                                 \
    return "HF_E" #name;
    HF_ERRNO_MAP(HF__ERR_NAME)
#undef HF__ERR_NAME
  case 0:
    return "HF_OK";
  default:
    return "HF_EUNKNOWN";
  }
}
