/* SPDX-License-Identifier: MIT */
/* `holdfast genconfig`, `holdfast gentoken`, `holdfast checktoken`
 * (tokens.c). Each takes the arguments after its command name and returns
 * the exit status. */
#ifndef HF_TOOLS_TOKENS_H
#define HF_TOOLS_TOKENS_H

int tok_genconfig_main(int argc, char **argv);
int tok_gentoken_main(int argc, char **argv);
int tok_checktoken_main(int argc, char **argv);

#endif
