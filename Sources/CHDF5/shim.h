#include <hdf5.h>

/* HDF5's predefined types and defaults are macros over library globals, which Swift cannot import:
   these wrappers hand them over as plain values. */
static inline hid_t st_h5t_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t st_h5t_c_s1(void) { return H5T_C_S1; }
static inline hid_t st_h5t_ieee_f32le(void) { return H5T_IEEE_F32LE; }
static inline hid_t st_h5t_ieee_f64le(void) { return H5T_IEEE_F64LE; }
static inline hid_t st_h5t_std_i32le(void) { return H5T_STD_I32LE; }
static inline hid_t st_h5p_default(void) { return H5P_DEFAULT; }
static inline hid_t st_h5s_all(void) { return H5S_ALL; }
static inline hid_t st_h5e_default(void) { return H5E_DEFAULT; }
static inline unsigned st_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline unsigned st_h5f_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline size_t st_h5t_variable(void) { return H5T_VARIABLE; }
static inline hid_t st_h5p_dataset_xfer(void) { return H5P_DATASET_XFER; }
