/* placeholder: being written */
typedef int portmap_placeholder_t;
