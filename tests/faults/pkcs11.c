/*
 * Token faults for tests/faults.rs: a PKCS#11 module that loads the real one
 * ($ARI_FAULT_PKCS11_MODULE, SoftHSM2 in the tests) and hands out its function list with one
 * entry replaced, C_SignInit. Before each C_SignInit it reads the control file
 * $ARI_FAULT_CONTROL, "KIND COUNT", and while COUNT is above zero counts it down and injects:
 *
 *   device_error    C_SignInit returns CKR_DEVICE_ERROR without reaching the token;
 *   close_session   the real C_CloseSession on the caller's session, then the real
 *                   C_SignInit on the now invalid handle (the token answers
 *                   CKR_SESSION_HANDLE_INVALID). Only the caller's own session: SoftHSM does
 *                   not survive C_CloseAllSessions racing other threads' calls in one process,
 *                   and no other process can close this one's sessions;
 *   logout          the real C_Logout, then the real C_SignInit.
 *
 * Each fault is appended as a line to $ARI_FAULT_LOG. Every other call goes to the real
 * module untouched. The layout below is PKCS#11 2.40's CK_FUNCTION_LIST: a CK_VERSION, then
 * 68 function pointers in the standard's order.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef unsigned long CK_ULONG;
typedef CK_ULONG CK_RV;
typedef struct { unsigned char major, minor; } CK_VERSION;
typedef struct { CK_VERSION version; void *fn[68]; } CK_FUNCTION_LIST;

enum { CLOSE_SESSION = 13, LOGOUT = 19, SIGN_INIT = 42 };
#define CKR_DEVICE_ERROR 0x30UL
#define CKR_GENERAL_ERROR 0x05UL

typedef CK_RV (*get_list_fn)(CK_FUNCTION_LIST **);
typedef CK_RV (*sign_init_fn)(CK_ULONG, void *, CK_ULONG);
typedef CK_RV (*session_fn)(CK_ULONG);

static CK_FUNCTION_LIST *real;
static CK_FUNCTION_LIST wrapped;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void note(const char *kind) {
    const char *path = getenv("ARI_FAULT_LOG");
    if (!path)
        return;
    FILE *f = fopen(path, "a");
    if (f) {
        fprintf(f, "%s\n", kind);
        fclose(f);
    }
}

/* Takes one fault from the control file; writes its kind into `kind`, or returns 0. */
static int take(char *kind, size_t size) {
    const char *path = getenv("ARI_FAULT_CONTROL");
    if (!path)
        return 0;
    pthread_mutex_lock(&lock);
    int taken = 0;
    FILE *f = fopen(path, "r");
    if (f) {
        char k[32];
        long count = 0;
        if (fscanf(f, "%31s %ld", k, &count) == 2 && count > 0) {
            taken = 1;
            snprintf(kind, size, "%s", k);
            FILE *w = fopen(path, "w");
            if (w) {
                fprintf(w, "%s %ld\n", k, count - 1);
                fclose(w);
            }
        }
        fclose(f);
    }
    pthread_mutex_unlock(&lock);
    return taken;
}

static CK_RV sign_init(CK_ULONG session, void *mechanism, CK_ULONG key) {
    char kind[32];
    if (take(kind, sizeof kind)) {
        note(kind);
        if (strcmp(kind, "device_error") == 0)
            return CKR_DEVICE_ERROR;
        if (strcmp(kind, "close_session") == 0) {
            ((session_fn)real->fn[CLOSE_SESSION])(session);
        } else if (strcmp(kind, "logout") == 0) {
            ((session_fn)real->fn[LOGOUT])(session);
        }
    }
    return ((sign_init_fn)real->fn[SIGN_INIT])(session, mechanism, key);
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST **out) {
    if (!out)
        return 0x7UL; /* CKR_ARGUMENTS_BAD */
    pthread_mutex_lock(&lock);
    if (!real) {
        const char *path = getenv("ARI_FAULT_PKCS11_MODULE");
        void *lib = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
        get_list_fn get = lib ? (get_list_fn)dlsym(lib, "C_GetFunctionList") : NULL;
        CK_FUNCTION_LIST *list = NULL;
        if (get && get(&list) == 0 && list) {
            real = list;
            wrapped = *list;
            wrapped.fn[SIGN_INIT] = (void *)sign_init;
        }
    }
    pthread_mutex_unlock(&lock);
    if (!real)
        return CKR_GENERAL_ERROR;
    *out = &wrapped;
    return 0;
}
