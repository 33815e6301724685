/* cli/progress.h: how `sae train` reports: a live bar on a terminal, periodic
 * plain lines otherwise, and JSON lines in the --log file. */
#ifndef SAE_CLI_PROGRESS_H
#define SAE_CLI_PROGRESS_H

#include <stdio.h>

#include "train/train.h"

typedef struct cli_progress {
    int tty;             /* stderr is a terminal */
    FILE *log;           /* JSON lines, or NULL */
    const char *log_path;
    double last_print_s; /* elapsed time of the last plain line */
    uint64_t start_tokens;
    int resumed;
} cli_progress;

/* Opens the log (appending after lines up to the resume point). */
int cli_progress_init(cli_progress *pr, const char *log_path, int resume);
void cli_progress_close(cli_progress *pr);
train_observer cli_progress_observer(cli_progress *pr);

#endif
